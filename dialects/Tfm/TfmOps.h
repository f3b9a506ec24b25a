//===- TfmOps.h - Transformer dialect ops -----------------------*- C++ -*-===//

#ifndef KILN_DIALECTS_TFM_TFMOPS_H
#define KILN_DIALECTS_TFM_TFMOPS_H

#include "dialects/Tfm/TfmDialect.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"

#define GET_OP_CLASSES
#include "dialects/Tfm/TfmOps.h.inc"

#endif // KILN_DIALECTS_TFM_TFMOPS_H
