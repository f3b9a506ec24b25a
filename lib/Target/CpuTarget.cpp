//===- CpuTarget.cpp - Host code generation -------------------------------===//

#include "kiln/Target/CpuTarget.h"
#include "dialects/Kiln/KilnDialect.h"
#include "kiln/runtime/Target.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

using namespace llvm;

namespace {
Error fail(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

/// A target machine for code that must run on any CPU of the host's
/// architecture at the runtime's baseline level (artifacts travel; the
/// loader checks the level), position independent for a shared object.
Expected<std::unique_ptr<TargetMachine>> hostTargetMachine() {
  InitializeNativeTarget();
  InitializeNativeTargetAsmPrinter();
  Triple triple(sys::getProcessTriple());
  std::string error;
  const Target *target = TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return fail("no LLVM backend for the host: " + error);
  StringRef cpu = triple.getArch() == Triple::x86_64
                      ? StringRef(kiln::runtime::kCpuBaseline)
                      : StringRef("generic");
  std::unique_ptr<TargetMachine> tm(
      target->createTargetMachine(triple, cpu, "", TargetOptions(), Reloc::PIC_,
                                  std::nullopt, CodeGenOptLevel::Aggressive));
  if (!tm)
    return fail("cannot create an LLVM target machine for " + triple.str());
  return std::move(tm);
}

Expected<std::unique_ptr<llvm::Module>>
optimizedModule(mlir::ModuleOp module, LLVMContext &ctx, TargetMachine &tm) {
  // Functions outlined from the entry points (kiln-outline-loop-nests) stay
  // functions of their own: inlined back, they would make one huge function
  // again, which LLVM's machine passes take minutes over.
  module.walk([](mlir::LLVM::LLVMFuncOp f) {
    if (!f->removeAttr(kiln::kNoInlineAttr))
      return;
    f.setNoInline(true);
    f.setLinkage(mlir::LLVM::Linkage::Internal);
  });
  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(module, ctx);
  if (!llvmModule)
    return fail("translation of the LLVM dialect to LLVM IR failed");
  llvmModule->setTargetTriple(tm.getTargetTriple());
  llvmModule->setDataLayout(tm.createDataLayout());
  // The kernel library may only call the C math library: anything else
  // (e.g. MLIR's runtime helpers) would be unresolved when the runtime loads
  // it.
  static const llvm::StringSet<> allowed = {
      "cosf", "sinf",  "expf",  "logf", "sqrtf",  "tanhf",   "powf",
      "erff", "exp2f", "log2f", "fmaf", "memcpy", "memmove", "memset"};
  for (const llvm::Function &f : *llvmModule)
    if (f.isDeclaration() && !f.isIntrinsic() && !allowed.contains(f.getName()))
      return fail("kernel code calls the external function '" + f.getName() +
                  "', which the kernel library cannot link");
  auto optimize = mlir::makeOptimizingTransformer(3, 0, &tm);
  if (Error err = optimize(llvmModule.get()))
    return std::move(err);
  return std::move(llvmModule);
}
} // namespace

Expected<std::vector<uint8_t>>
kiln::emitCpuSharedObject(mlir::ModuleOp module) {
  auto tm = hostTargetMachine();
  if (!tm)
    return tm.takeError();
  LLVMContext ctx;
  auto llvmModule = optimizedModule(module, ctx, **tm);
  if (!llvmModule)
    return llvmModule.takeError();

  SmallString<128> objPath, soPath;
  if (std::error_code ec =
          sys::fs::createTemporaryFile("kiln-kernels", "o", objPath))
    return fail("cannot create a temporary object file: " + ec.message());
  if (std::error_code ec =
          sys::fs::createTemporaryFile("kiln-kernels", "so", soPath))
    return fail("cannot create a temporary shared object: " + ec.message());
  FileRemover removeObj(objPath), removeSo(soPath);
  {
    std::error_code ec;
    raw_fd_ostream os(objPath, ec, sys::fs::OF_None);
    if (ec)
      return fail("cannot write " + objPath + ": " + ec.message());
    legacy::PassManager pm;
    if ((*tm)->addPassesToEmitFile(pm, os, nullptr,
                                   CodeGenFileType::ObjectFile))
      return fail("the LLVM backend cannot emit object files");
    pm.run(**llvmModule);
  }

  // Link with the system compiler driver: it knows where libm and the
  // startup files live on this machine.
  std::string ccName = "cc";
  if (const char *env = std::getenv("CC"))
    ccName = env;
  auto cc = sys::findProgramByName(ccName);
  if (!cc)
    return fail("cannot find the C compiler driver '" + ccName +
                "' to link the kernel library (install gcc, or set CC)");
  SmallVector<StringRef> args{*cc, "-shared", "-o", soPath, objPath, "-lm"};
  std::string errMsg;
  int rc = sys::ExecuteAndWait(*cc, args, std::nullopt, {}, 0, 0, &errMsg);
  if (rc != 0)
    return fail("linking the kernel library with '" + *cc + "' failed (exit " +
                Twine(rc) + ") " + errMsg);
  auto bytes = MemoryBuffer::getFile(soPath, false, false);
  if (!bytes)
    return fail("cannot read the linked kernel library: " +
                bytes.getError().message());
  StringRef data = (*bytes)->getBuffer();
  return std::vector<uint8_t>(data.begin(), data.end());
}
