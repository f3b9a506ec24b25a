//===- KilnDialect.td - Kiln's pass-to-pass attributes -----*- tablegen -*-===//
//
// The `kiln` dialect has no ops: it owns the `kiln.*` attributes that one
// pass records for a later one (entry points, buffer offsets, the memory
// plan, kernel tags) and verifies each of them, so that a misspelt name or a
// wrong kind is an error where it is made, not a default where it is read.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_KILN_DIALECT_TD
#define KILN_KILN_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Kiln_Dialect : Dialect {
  let name = "kiln";
  let cppNamespace = "::kiln";
  let summary = "Attributes that Kiln's passes hand to later passes";
  let description = [{
    Every discardable attribute named `kiln.<name>` is checked by this
    dialect's verifier against the table in `KilnDialect.h` (its kind, and
    for some its contents); an unknown `kiln.` name is an error. Attributes
    that are structured data have their own attribute class, such as
    `#kiln.buffer` for one entry of the arena plan.
  }];
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let useDefaultAttributePrinterParser = 1;
}

def Kiln_BufferPlacementAttr : AttrDef<Kiln_Dialect, "BufferPlacement"> {
  let mnemonic = "buffer";
  let summary = "Where kiln-plan-memory put one buffer in the arena";
  let description = [{
    A buffer of `size` bytes at byte `offset` of the arena, live from the
    `start`-th to the `end`-th operation of its function (both included, in
    the planner's numbering). `kiln.memory_plan` is an array of these, one
    per buffer in program order.

    ```mlir
    #kiln.buffer<offset = 64, size = 128, start = 1, end = 4>
    ```
  }];
  let parameters = (ins "int64_t":$offset, "int64_t":$size, "int64_t":$start,
                        "int64_t":$end);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // KILN_KILN_DIALECT_TD
