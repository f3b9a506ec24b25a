//===- InitAllDialects.h - Dialects a Kiln module may contain ---*- C++ -*-===//

#ifndef KILN_INITALLDIALECTS_H
#define KILN_INITALLDIALECTS_H

#include "dialects/Tfm/TfmDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"

namespace kiln {
/// Registers every dialect that the importer and Kiln's passes produce.
inline void registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<tfm::TfmDialect, mlir::arith::ArithDialect,
                  mlir::func::FuncDialect, mlir::ml_program::MLProgramDialect,
                  mlir::tensor::TensorDialect>();
}
} // namespace kiln

#endif // KILN_INITALLDIALECTS_H
