//===- CpuTarget.h - Host code generation -----------------------*- C++ -*-===//

#ifndef KILN_TARGET_CPUTARGET_H
#define KILN_TARGET_CPUTARGET_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace kiln {

/// Translates an LLVM-dialect module to LLVM IR, optimizes it (O3) for a
/// portable x86-64 (or the host architecture), emits an object file and links
/// it into a shared object with the system C compiler driver (`cc`, or $CC).
/// Returns the shared object's bytes, which the runtime loads with dlopen.
llvm::Expected<std::vector<uint8_t>> emitCpuSharedObject(mlir::ModuleOp module);

} // namespace kiln

#endif // KILN_TARGET_CPUTARGET_H
