//===- KilnDialect.cpp - Verification of the kiln.* attributes ------------===//

#include "dialects/Kiln/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/TypeSwitch.h"

#include <optional>

using namespace mlir;
using namespace kiln;

#include "dialects/Kiln/KilnDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Kiln/KilnAttrs.cpp.inc"

void KilnDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/Kiln/KilnAttrs.cpp.inc"
      >();
}

LogicalResult
BufferPlacementAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                            int64_t offset, int64_t size, int64_t start,
                            int64_t end) {
  if (offset < 0 || size < 0)
    return emitError() << "#kiln.buffer offset " << offset << " and size "
                       << size << " must not be negative";
  if (start < 0 || end < start)
    return emitError() << "#kiln.buffer live range [" << start << ", " << end
                       << "] is not 0 <= start <= end";
  return success();
}

namespace {

/// The kinds of value a kiln.* attribute holds.
enum class Kind {
  Unknown,
  Unit,
  String,
  NonNegative,
  Type,
  OffsetList,
  OffsetDictionary,
  Region,
  MemoryPlan
};

Kind kindOf(StringRef name) {
  return llvm::StringSwitch<Kind>(name)
      .Cases({kWeightsAttr, kArenaAttr, kWaitsForPreviousAttr, kNoInlineAttr,
              kScratchAttr, kSamplingAttr, kBlockTableAttr},
             Kind::Unit)
      .Cases({kEntryAttr, kKernelAttr, kMappingAttr, kTilingAttr}, Kind::String)
      .Cases({kOffsetAttr, kWeightsSizeAttr, kKvSizeAttr, kArenaSizeAttr,
              kRegionIdAttr, kClusterBlocksAttr},
             Kind::NonNegative)
      .Cases({kTokensTypeAttr, kLogitsTypeAttr, kCacheTypeAttr}, Kind::Type)
      .Case(kKvOffsetsAttr, Kind::OffsetList)
      .Case(kIoAttr, Kind::OffsetDictionary)
      .Case(kRegionAttr, Kind::Region)
      .Case(kMemoryPlanAttr, Kind::MemoryPlan)
      .Default(Kind::Unknown);
}

bool isNonNegative(Attribute a) {
  auto i = dyn_cast<IntegerAttr>(a);
  return i && i.getType().isInteger(64) && i.getInt() >= 0;
}

/// Whether `value` is of `kind`; `what` says what the kind requires.
bool holds(Kind kind, StringRef name, Attribute value, StringRef &what) {
  switch (kind) {
  case Kind::Unknown:
    return false;
  case Kind::Unit:
    what = "a unit attribute";
    return isa<UnitAttr>(value);
  case Kind::String: {
    auto s = dyn_cast<StringAttr>(value);
    if (name != kEntryAttr) {
      what = "a string";
      return bool(s);
    }
    what = "\"prefill\", \"prefill_all\", \"decode\" or \"decode_b<N>\"";
    if (!s)
      return false;
    StringRef entry = s.getValue();
    unsigned rows;
    return entry == "prefill" || entry == "prefill_all" || entry == "decode" ||
           (entry.consume_front("decode_b") && !entry.getAsInteger(10, rows) &&
            rows > 0);
  }
  case Kind::NonNegative:
    what = "an i64 >= 0";
    return isNonNegative(value);
  case Kind::Type:
    what = "a type";
    return isa<TypeAttr>(value);
  case Kind::OffsetList: {
    what = "an array of i64 >= 0";
    auto list = dyn_cast<ArrayAttr>(value);
    return list && llvm::all_of(list, isNonNegative);
  }
  case Kind::OffsetDictionary: {
    what = "a dictionary of i64 >= 0";
    auto dict = dyn_cast<DictionaryAttr>(value);
    return dict && llvm::all_of(dict, [](NamedAttribute a) {
             return isNonNegative(a.getValue());
           });
  }
  case Kind::Region: {
    what = "a dictionary with a string 'op'";
    auto dict = dyn_cast<DictionaryAttr>(value);
    return dict && dict.getAs<StringAttr>("op");
  }
  case Kind::MemoryPlan: {
    what = "an array of #kiln.buffer";
    auto list = dyn_cast<ArrayAttr>(value);
    return list && llvm::all_of(list, llvm::IsaPred<BufferPlacementAttr>);
  }
  }
  llvm_unreachable("covered switch");
}

/// Checks `attr`'s value against its name's kind, and that it sits on a
/// function argument exactly when it is an argument attribute.
LogicalResult verifyKilnAttr(Operation *op, NamedAttribute attr,
                             std::optional<unsigned> argIndex) {
  StringRef name = attr.getName().getValue();
  Kind kind = kindOf(name);
  if (kind == Kind::Unknown)
    return op->emitOpError()
           << "unknown kiln attribute '" << name
           << "' (the names are listed in dialects/Kiln/KilnDialect.h)";
  StringRef what;
  if (!holds(kind, name, attr.getValue(), what))
    return op->emitOpError() << "'" << name << "' must be " << what << ", got "
                             << attr.getValue();
  bool isArgAttr = name == kWeightsAttr || name == kArenaAttr;
  if (isArgAttr && !argIndex)
    return op->emitOpError()
           << "'" << name << "' belongs on a function argument";
  if (!isArgAttr && argIndex)
    return op->emitOpError() << "'" << name << "' on argument #" << *argIndex
                             << " belongs on an operation";
  return success();
}

} // namespace

LogicalResult KilnDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  return verifyKilnAttr(op, attr, std::nullopt);
}

LogicalResult KilnDialect::verifyRegionArgAttribute(Operation *op,
                                                    unsigned regionIndex,
                                                    unsigned argIndex,
                                                    NamedAttribute attr) {
  return verifyKilnAttr(op, attr, argIndex);
}

void kiln::registerKilnDialect(DialectRegistry &registry) {
  registry.insert<KilnDialect>();
  registry.addExtension(+[](MLIRContext *context, func::FuncDialect *) {
    context->getOrLoadDialect<KilnDialect>();
  });
}
