//===- GpuTarget.cpp - NVIDIA code generation
//------------------------------===//

#include "kiln/Target/GpuTarget.h"
#include "dialects/Kiln/KilnDialect.h"
#include "kiln/Pipelines/Pipelines.h"

#include "kiln/runtime/Target.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

#include <cstdlib>
#include <optional>

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;

namespace {
llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

/// Where a CUDA toolkit may be: $CUDA_HOME, then /usr/local/cuda.
std::vector<std::string> cudaRoots() {
  std::vector<std::string> roots;
  if (const char *home = std::getenv("CUDA_HOME"))
    roots.push_back(home);
  roots.push_back("/usr/local/cuda");
  return roots;
}

/// `program` on PATH, else in a CUDA toolkit's bin.
std::optional<std::string> findCudaTool(StringRef program) {
  if (auto p = llvm::sys::findProgramByName(program))
    return *p;
  for (const std::string &root : cudaRoots()) {
    std::string path = root + "/bin/" + program.str();
    if (llvm::sys::fs::can_execute(path))
      return path;
  }
  return std::nullopt;
}

/// CUDA's libdevice (math functions for NVVM), if a toolkit is installed.
std::string findLibdevice() {
  for (const std::string &root : cudaRoots()) {
    std::string path = root + "/nvvm/libdevice/libdevice.10.bc";
    if (llvm::sys::fs::exists(path))
      return path;
  }
  return "";
}

} // namespace

std::string kiln::kernelArch(StringRef target) {
  return target == "sm_90" ? std::string("sm_90a") : target.str();
}

llvm::Expected<GpuCode> kiln::generateGpuCode(ModuleOp module, StringRef chip,
                                              bool assemble, bool deduplicate,
                                              bool splitKv) {
  GpuOptions gpu;
  gpu.deduplicate = deduplicate;
  gpu.chip = kernelArch(chip);
  gpu.dependentLaunch = rt::gpuTargetMajor(chip) >= 9;
  // Thread-block clusters (sm_90+) of up to 8 blocks, the portable size.
  gpu.clusterBlocks = splitKv && rt::gpuTargetMajor(chip) >= 9 ? 8 : 1;
  gpu.libdevice = findLibdevice();
  if (llvm::Error err =
          runPipeline(module, "GPU code generation",
                      [&](OpPassManager &pm) { buildGpuPipeline(pm, gpu); }))
    return std::move(err);
  GpuCode code;
  module.walk([&](gpu::BinaryOp binary) {
    for (Attribute a : binary.getObjects())
      if (auto object = dyn_cast<gpu::ObjectAttr>(a))
        code.ptx = object.getObject().str();
  });
  if (code.ptx.empty())
    return fail("GPU code generation produced no PTX");
  auto ptxas = findCudaTool("ptxas");
  if (!ptxas || !assemble)
    return code; // the driver JIT-compiles the PTX at load time
  llvm::SmallString<128> ptxPath, cubinPath, logPath;
  llvm::sys::fs::createTemporaryFile("kiln-kernels", "ptx", ptxPath);
  llvm::sys::fs::createTemporaryFile("kiln-kernels", "cubin", cubinPath);
  llvm::sys::fs::createTemporaryFile("kiln-ptxas", "log", logPath);
  llvm::FileRemover r1(ptxPath), r2(cubinPath), r3(logPath);
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(ptxPath, ec);
    if (ec)
      return fail("cannot write " + ptxPath + ": " + ec.message());
    os << code.ptx;
  }
  std::string arch = "-arch=" + gpu.chip;
  llvm::SmallVector<StringRef> args{*ptxas,  arch, "-O3",
                                    ptxPath, "-o", cubinPath};
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(logPath),
                                          StringRef(logPath)};
  int rc = llvm::sys::ExecuteAndWait(*ptxas, args, std::nullopt, redirects);
  auto log = llvm::MemoryBuffer::getFile(logPath);
  if (log)
    code.ptxasLog = (*log)->getBuffer().str();
  if (rc != 0)
    return fail("ptxas failed for " + chip + ": " + code.ptxasLog);
  auto cubin = llvm::MemoryBuffer::getFile(cubinPath, false, false);
  if (!cubin)
    return fail("cannot read the cubin: " + cubin.getError().message());
  StringRef bytes = (*cubin)->getBuffer();
  code.cubin.assign(bytes.begin(), bytes.end());
  return code;
}

llvm::Expected<std::vector<rt::LaunchSpec>>
kiln::launchSchedule(func::FuncOp func,
                     std::map<std::string, uint64_t> *byMapping,
                     std::map<std::string, uint64_t> *byTiling) {
  std::vector<rt::LaunchSpec> launches;
  Block &body = func.getBody().front();
  for (Operation &op : body.without_terminator()) {
    auto launch = dyn_cast<gpu::LaunchFuncOp>(op);
    if (!launch) {
      if (isMemoryEffectFree(&op))
        continue;
      return fail("internal error: entry @" + func.getSymName() +
                  " has host work besides kernel launches");
    }
    rt::LaunchSpec spec;
    spec.kernel = launch.getKernelName().str();
    auto mapping = launch->getAttrOfType<StringAttr>(kMappingAttr);
    ++(*byMapping)[mapping ? mapping.getValue().str() : "unnamed"];
    if (auto tiling = launch->getAttrOfType<StringAttr>(kTilingAttr))
      ++(*byTiling)[(mapping ? mapping.getValue().str() : "unnamed") + " " +
                    tiling.getValue().str()];
    gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
    gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
    Value dims[6] = {grid.x, grid.y, grid.z, block.x, block.y, block.z};
    for (int i = 0; i < 6; ++i) {
      auto c = dims[i].getDefiningOp<arith::ConstantIndexOp>();
      if (!c)
        return fail("internal error: dynamic launch size in @" +
                    func.getSymName());
      (i < 3 ? spec.grid[i] : spec.block[i - 3]) =
          static_cast<uint32_t>(c.value());
    }
    spec.sharedBytes = 0;
    if (Value shared = launch.getDynamicSharedMemorySize()) {
      auto c = getConstantIntValue(shared);
      if (!c || *c < 0)
        return fail("internal error: dynamic shared memory size in @" +
                    func.getSymName());
      spec.sharedBytes = static_cast<uint32_t>(*c);
    }
    spec.waitsForPrevious = launch->hasAttr(kWaitsForPreviousAttr);
    // A runtime buffer, or a constant-offset view of one (a layer's tensor
    // for a kernel the layers share: kiln-deduplicate-kernels).
    bool views = false;
    for (Value arg : launch.getKernelOperands()) {
      uint64_t offset = 0, bytes = 0;
      if (auto view = arg.getDefiningOp<memref::ViewOp>()) {
        std::optional<int64_t> shift = getConstantIntValue(view.getByteShift());
        MemRefType type = view.getType();
        if (!shift || *shift < 0 || !type.hasStaticShape())
          return fail("internal error: a kernel argument of @" +
                      func.getSymName() + " is a view at a dynamic offset");
        offset = static_cast<uint64_t>(*shift);
        bytes = static_cast<uint64_t>(type.getNumElements()) *
                llvm::divideCeil(type.getElementTypeBitWidth(), 8);
        arg = view.getSource();
        views = true;
      }
      auto blockArg = dyn_cast<BlockArgument>(arg);
      if (!blockArg || blockArg.getOwner() != &body)
        return fail("internal error: kernel argument is not a runtime "
                    "buffer");
      spec.args.push_back(static_cast<uint8_t>(blockArg.getArgNumber()));
      spec.argOffsets.push_back(offset);
      spec.argBytes.push_back(bytes);
    }
    if (!views) {
      spec.argOffsets.clear();
      spec.argBytes.clear();
    }
    launches.push_back(std::move(spec));
  }
  return launches;
}
