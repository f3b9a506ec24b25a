//===- CpuExecutor.cpp - Runs entry points from a shared-object image ----===//
//
// Each SharedObject kernel image is written to an anonymous memory file
// (memfd_create; a deleted temporary file where that is unavailable) and
// dlopen'ed from there. The memfd stays open while the library is loaded:
// glibc identifies loaded objects by path, and "/proc/self/fd/N" must not
// name another image while this one is loaded.
//
//===----------------------------------------------------------------------===//

#include "Executor.h"
#include "Format.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Target.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace kiln::runtime {
using detail::fail;

namespace {

using EntryFn = void (*)(void *weights, void *kv, void *arena, void *io);

struct LoadedImage {
  std::string name;
  void *handle = nullptr;
  int fd = -1;
};

bool writeAll(int fd, const uint8_t *data, size_t size) {
  while (size) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool loadImage(const KernelImage &image, LoadedImage *out, std::string *error) {
  static const uint8_t elfMagic[4] = {0x7F, 'E', 'L', 'F'};
  if (image.size < 64 || std::memcmp(image.data, elfMagic, 4) != 0)
    return fail(error, "kernel image '", image.name,
                "' is not an ELF shared object");
  out->name = image.name;
  std::string path;
  bool temporary = false;
  int fd = memfd_create(("kiln:" + image.name).c_str(), MFD_CLOEXEC);
  if (fd >= 0) {
    path = "/proc/self/fd/" + std::to_string(fd);
  } else {
    const char *dir = std::getenv("TMPDIR");
    path = std::string(dir && *dir ? dir : "/tmp") + "/kiln-image-XXXXXX";
    fd = mkstemp(path.data());
    temporary = true;
    if (fd < 0)
      return fail(error, "cannot create a file for kernel image '", image.name,
                  "': ", std::strerror(errno));
  }
  if (!writeAll(fd, image.data, image.size)) {
    int saved = errno;
    ::close(fd);
    if (temporary)
      ::unlink(path.c_str());
    return fail(error, "cannot write kernel image '", image.name,
                "': ", std::strerror(saved));
  }
  out->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  const char *why = out->handle ? nullptr : dlerror();
  if (temporary) {
    ::unlink(path.c_str());
    ::close(fd);
  } else {
    out->fd = fd;
  }
  if (!out->handle)
    return fail(error, "cannot load kernel image '", image.name,
                "': ", why ? why : "unknown dlopen error");
  return true;
}

class CpuExecutor : public Executor {
public:
  ~CpuExecutor() override {
    for (LoadedImage &image : images) {
      if (image.handle)
        dlclose(image.handle);
      if (image.fd >= 0)
        ::close(image.fd);
    }
  }

  bool init(const Artifact &artifact, std::string *error) {
    const char *missing = nullptr;
    if (!hostMeetsCpuBaseline(&missing))
      return fail(error, "this CPU lacks ", missing,
                  ", which the 'cpu' "
                  "target's code (",
                  kCpuBaseline, ") needs");
    for (const KernelImage &image : artifact.images()) {
      if (image.kind != ImageKind::SharedObject)
        continue;
      images.emplace_back();
      if (!loadImage(image, &images.back(), error))
        return false;
    }
    if (images.empty())
      return fail(error, "artifact for target 'cpu' has no SharedObject "
                         "kernel image");
    for (const EntrySpec &entry : artifact.entries()) {
      EntryFn fn = resolve(artifact, entry, error);
      if (!fn)
        return false;
      entries.push_back(fn);
    }
    return true;
  }

  bool run(size_t entryIndex, const void *weights, void *kv, void *arena,
           void *io, const Readback &, std::string *error) override {
    entries[entryIndex](const_cast<void *>(weights), kv, arena, io);
    return true;
  }

private:
  EntryFn lookup(const LoadedImage &image, const std::string &symbol) {
    return reinterpret_cast<EntryFn>(dlsym(image.handle, symbol.c_str()));
  }

  EntryFn resolve(const Artifact &artifact, const EntrySpec &entry,
                  std::string *error) {
    if (!entry.image.empty()) {
      const KernelImage *image = artifact.findImage(entry.image);
      if (image->kind != ImageKind::SharedObject) {
        fail(error, "entry '", entry.name, "' is in kernel image '",
             entry.image, "' of kind ", imageKindName(image->kind),
             "; the cpu target runs SharedObject images");
        return nullptr;
      }
      for (const LoadedImage &loaded : images)
        if (loaded.name == entry.image) {
          if (EntryFn fn = lookup(loaded, entry.symbol))
            return fn;
          fail(error, "kernel image '", entry.image,
               "' does not define symbol '", entry.symbol, "' of entry '",
               entry.name, "'");
          return nullptr;
        }
    }
    for (const LoadedImage &loaded : images)
      if (EntryFn fn = lookup(loaded, entry.symbol))
        return fn;
    fail(error, "no kernel image defines symbol '", entry.symbol,
         "' of entry '", entry.name, "'");
    return nullptr;
  }

  std::vector<LoadedImage> images;
  std::vector<EntryFn> entries;
};

} // namespace

bool Executor::measureCopyBandwidth(uint64_t bytes, int repeats,
                                    double *bytesPerSecond,
                                    std::string *error) {
  // Host memory: memcpy between two buffers touched first (no page faults
  // in the timing).
  std::vector<char> from(bytes, 1), to(bytes, 0);
  double best = 0;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    std::memcpy(to.data(), from.data(), bytes);
    std::chrono::duration<double> s = std::chrono::steady_clock::now() - start;
    if (s.count() > 0)
      best = std::max(best, 2.0 * double(bytes) / s.count());
  }
  if (best <= 0)
    return fail(error, "could not time a ", bytes, "-byte copy");
  *bytesPerSecond = best;
  return true;
}

std::unique_ptr<Executor> createCpuExecutor(const Artifact &artifact,
                                            std::string *error) {
  auto executor = std::make_unique<CpuExecutor>();
  if (!executor->init(artifact, error))
    return nullptr;
  return executor;
}

std::unique_ptr<Executor> createExecutor(const Artifact &artifact,
                                         std::string *error) {
  const std::string &target = artifact.target();
  if (target == "cpu")
    return createCpuExecutor(artifact, error);
  if (isNvidiaTargetName(target))
    return createGpuExecutor(artifact, error);
  fail(error, "unsupported target '", target,
       "' (this runtime runs 'cpu' and 'sm_*' artifacts)");
  return nullptr;
}

} // namespace kiln::runtime
