//===- CpuExecutor.cpp - Runs entry points from a shared-object image ----===//
//
// Each SharedObject kernel image is written to an anonymous memory file
// (memfd_create; a deleted temporary file where that is unavailable) and
// dlopen'ed from there. The memfd stays open while the library is loaded:
// glibc identifies loaded objects by path, and "/proc/self/fd/N" must not
// name another image while this one is loaded.
//
// A tensor-parallel artifact runs each call as its ranks, one thread each,
// over the same loaded code: rank r reads weight set r and its own KV cache,
// arena and io buffer (rank 0's are the Session's), and the ranks meet in
// the host collectives (kiln/runtime/Collectives.h) that the code calls.
//
//===----------------------------------------------------------------------===//

#include "Executor.h"
#include "Format.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Collectives.h"
#include "kiln/runtime/Numeric.h"
#include "kiln/runtime/Target.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <dlfcn.h>
#include <mutex>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace kiln::runtime {
using detail::fail;

namespace {

using EntryFn = void (*)(void *weights, void *kv, void *arena, void *io,
                         KilnHostCollectives *collectives);

/// The ranks of one call meeting in their collectives: each rank's thread
/// publishes its buffer, waits for the others, reads theirs, waits again
/// (so that no buffer changes while another rank reads it), then writes
/// its own result. Every rank sums in rank order: the same bytes on each.
class HostGroup {
public:
  explicit HostGroup(int ranks) : ranks(ranks), slots(ranks) {}

  void allReduce(int rank, void *data, int64_t count, DType dtype,
                 std::vector<float> &sum, std::vector<float> &part) {
    slots[rank] = data;
    arrive();
    sum.assign(count, 0.0f);
    part.resize(count);
    for (int r = 0; r < ranks; ++r) {
      convertToFloat(slots[r], dtype, count, part.data());
      for (int64_t i = 0; i < count; ++i)
        sum[i] += part[i];
    }
    arrive();
    convertFromFloat(sum.data(), dtype, count, data);
  }

  void allGather(int rank, const void *in, void *out, int64_t count,
                 DType dtype) {
    slots[rank] = in;
    arrive();
    const size_t bytes = count * dtypeSize(dtype);
    for (int r = 0; r < ranks; ++r)
      std::memcpy(static_cast<char *>(out) + r * bytes, slots[r], bytes);
    arrive();
  }

private:
  /// A barrier of all ranks (reusable: a generation count).
  void arrive() {
    std::unique_lock<std::mutex> lock(mutex);
    uint64_t gen = generation;
    if (++waiting == ranks) {
      waiting = 0;
      ++generation;
      wake.notify_all();
      return;
    }
    wake.wait(lock, [&] { return generation != gen; });
  }

  const int ranks;
  std::vector<const void *> slots;
  std::mutex mutex;
  std::condition_variable wake;
  int waiting = 0;
  uint64_t generation = 0;
};

/// A rank's f32 scratch for its sums.
struct RankScratch {
  std::vector<float> sum, part;
};

/// One rank's KilnHostCollectives: the C entry points find the group and
/// the rank through it (the struct is its first member).
struct RankCollectives {
  KilnHostCollectives api;
  HostGroup *group;
  int rank;
  RankScratch *scratch;
  double seconds; // in the collectives, waiting included

  static RankCollectives *of(KilnHostCollectives *self) {
    return reinterpret_cast<RankCollectives *>(self);
  }
  static void allReduce(KilnHostCollectives *self, void *data, int64_t count,
                        int32_t dtype) {
    RankCollectives *c = of(self);
    auto start = std::chrono::steady_clock::now();
    c->group->allReduce(c->rank, data, count, static_cast<DType>(dtype),
                        c->scratch->sum, c->scratch->part);
    c->seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  }
  static void allGather(KilnHostCollectives *self, const void *in, void *out,
                        int64_t count, int32_t dtype) {
    RankCollectives *c = of(self);
    auto start = std::chrono::steady_clock::now();
    c->group->allGather(c->rank, in, out, count, static_cast<DType>(dtype));
    c->seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  }
};
static_assert(offsetof(RankCollectives, api) == 0,
              "the code calls through the struct's first member");
static_assert(offsetof(KilnHostCollectives, allReduce) ==
                      kAllReduceSlot * sizeof(void *) &&
                  offsetof(KilnHostCollectives, allGather) ==
                      kAllGatherSlot * sizeof(void *),
              "the slots kiln-lower-collectives-to-calls loads");

/// A buffer of `size` bytes (at least one), aligned for the code, zeroed.
struct AlignedBuffer {
  explicit AlignedBuffer(uint64_t size)
      : bytes(detail::alignUp(std::max<uint64_t>(size, 1), kBufferAlignment)),
        data(std::aligned_alloc(kBufferAlignment, bytes)) {
    if (data)
      std::memset(data, 0, bytes);
  }
  ~AlignedBuffer() { std::free(data); }
  AlignedBuffer(const AlignedBuffer &) = delete;
  AlignedBuffer &operator=(const AlignedBuffer &) = delete;
  uint64_t bytes;
  void *data;
};

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
    model = &artifact;
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
    // Ranks 1.. of a tensor-parallel artifact: their own buffers.
    uint64_t arenaSize = 0, ioSize = 0;
    for (const EntrySpec &entry : artifact.entries()) {
      arenaSize = std::max(arenaSize, entry.arenaSize);
      ioSize = std::max(ioSize, entry.ioSize);
    }
    for (int64_t r = 1; r < artifact.tensorParallel(); ++r) {
      Rank &rank =
          ranks.emplace_back(artifact.kvCache().kvBytes, arenaSize, ioSize);
      if (!rank.kv.data || !rank.arena.data || !rank.io.data)
        return fail(error, "cannot allocate rank ", r,
                    "'s KV cache, arena and io buffer");
    }
    return true;
  }

  bool run(size_t entryIndex, const void *weights, void *kv, void *arena,
           void *io, const Readback &, std::string *error) override {
    if (ranks.empty()) {
      entries[entryIndex](const_cast<void *>(weights), kv, arena, io, nullptr);
      return true;
    }
    // Every rank reads the same inputs; rank 0's io holds the outputs.
    const EntrySpec &entry = model->entries()[entryIndex];
    const int count = static_cast<int>(ranks.size()) + 1;
    HostGroup group(count);
    std::vector<RankScratch> scratch(count);
    std::vector<RankCollectives> collectives;
    for (int r = 0; r < count; ++r)
      collectives.push_back(
          {{&RankCollectives::allReduce, &RankCollectives::allGather},
           &group,
           r,
           &scratch[r],
           0.0});
    EntryFn fn = entries[entryIndex];
    std::vector<std::thread> threads;
    for (int r = 1; r < count; ++r) {
      Rank &rank = ranks[r - 1];
      std::memcpy(rank.io.data, io, entry.ioSize);
      threads.emplace_back([&, r, fn] {
        fn(const_cast<uint8_t *>(model->rankWeights(r)), rank.kv.data,
           rank.arena.data, rank.io.data, &collectives[r].api);
      });
    }
    fn(const_cast<void *>(weights), kv, arena, io, &collectives[0].api);
    for (std::thread &t : threads)
      t.join();
    collectiveTime += collectives[0].seconds;
    return true;
  }

  double collectiveSeconds() const override { return collectiveTime; }

  bool kvCleared(const void *, std::string *) override {
    for (Rank &rank : ranks)
      std::memset(rank.kv.data, 0, rank.kv.bytes);
    return true;
  }

  bool kvUpdated(const void *, std::string *error) override {
    if (!ranks.empty())
      return fail(error, "a tensor-parallel artifact (", ranks.size() + 1,
                  " ranks) cannot preload a KV cache: each rank holds its "
                  "own heads");
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

  struct Rank {
    Rank(uint64_t kvBytes, uint64_t arenaBytes, uint64_t ioBytes)
        : kv(kvBytes), arena(arenaBytes), io(ioBytes) {}
    AlignedBuffer kv, arena, io;
  };

  const Artifact *model = nullptr;
  double collectiveTime = 0;
  std::vector<LoadedImage> images;
  std::vector<EntryFn> entries;
  std::deque<Rank> ranks; // ranks 1.. of a tensor-parallel artifact
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
  if (isNvidiaTargetName(target)) {
    if (artifact.tensorParallel() > 1) {
      fail(error, "this artifact is split over ", artifact.tensorParallel(),
           " ranks; the runtime runs split artifacts on the 'cpu' target only "
           "so far (the GPU's collectives are not implemented)");
      return nullptr;
    }
    return createGpuExecutor(artifact, error);
  }
  fail(error, "unsupported target '", target,
       "' (this runtime runs 'cpu' and 'sm_*' artifacts)");
  return nullptr;
}

} // namespace kiln::runtime
