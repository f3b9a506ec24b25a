//===- TfmDialect.h - Transformer dialect -----------------------*- C++ -*-===//

#ifndef KILN_DIALECTS_TFM_TFMDIALECT_H
#define KILN_DIALECTS_TFM_TFMDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/Tfm/TfmDialect.h.inc"
#include "dialects/Tfm/TfmEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Tfm/TfmAttrs.h.inc"

#endif // KILN_DIALECTS_TFM_TFMDIALECT_H
