//===- Importer.cpp - The importer's entry points and graph driver --------===//
//
// importOnnxModel: load, infer shapes, raise from the logits output, build
// @forward with its token, position and KV-cache arguments. Also
// describeOnnxShapes for --emit=shapes.
//
//===----------------------------------------------------------------------===//

#include "OnnxAttrs.h"
#include "Raiser.h"

#include "kiln/Import/OnnxImporter.h"
#include "kiln/InitAllDialects.h"

#include "mlir/IR/Verifier.h"
#include "llvm/Support/FormatVariadic.h"

using namespace kiln;
using namespace mlir;
using llvm::formatv;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

llvm::Error Raiser::run() {
  const onnx::GraphProto &g = model.graph();
  auto error = [&](const llvm::Twine &msg) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "'" + model.path() + "': " + msg);
  };
  if (g.output_size() == 0)
    return error("the graph has no outputs");
  std::string logitsName = g.output(0).name();
  for (const auto &o : g.output())
    if (o.name() == "logits")
      logitsName = o.name();

  // The token ids: the integer graph input read by the embedding lookup.
  const onnx::ValueInfoProto *idsInput = nullptr;
  for (const auto &in : g.input()) {
    if (model.constant(in.name()))
      continue;
    if (findEmbedding(in.name()))
      idsInput = &in;
    if (error_)
      return error(*error_);
  }
  if (!idsInput)
    return error("no graph input is used as token ids by an embedding lookup "
                 "(expected input_ids[batch, seq] -> Gather(table, input_ids), "
                 "Gather(Transpose(W), input_ids) or GatherBlockQuantized)");
  elementType = elementTypeFor(ctx, embeddingTable->dtype);
  if (!elementType)
    return error(formatv("embedding table '{0}' has data type {1}; Kiln "
                         "supports FLOAT, FLOAT16 and BFLOAT16 models",
                         embeddingTable->name,
                         onnxTypeName(embeddingTable->dtype)));
  int32_t idType = idsInput->type().tensor_type().elem_type();
  if (idType != onnx::TensorProto::INT64 && idType != onnx::TensorProto::INT32)
    return error(formatv("token ids '{0}' have data type {1}; expected INT64 "
                         "or INT32",
                         idsInput->name(), onnxTypeName(idType)));

  auto dyn2 = [&](Type t) {
    return RankedTensorType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                                 t);
  };
  builder.setInsertionPointToEnd(module.getBody());
  auto funcType = builder.getFunctionType(
      {dyn2(idType == onnx::TensorProto::INT64 ? builder.getI64Type()
                                               : builder.getI32Type()),
       dyn2(builder.getI64Type())},
      {});
  func = func::FuncOp::create(builder,
                              NameLoc::get(builder.getStringAttr(
                                  g.name().empty() ? "graph" : g.name())),
                              "forward", funcType);
  Block *body = func.addEntryBlock();
  tokens = body->getArgument(0);
  positions = body->getArgument(1);
  func.setArgAttr(0, "tfm.role", builder.getStringAttr("tokens"));
  func.setArgAttr(1, "tfm.role", builder.getStringAttr("positions"));
  builder.setInsertionPointToEnd(body);

  Value out = logits(logitsName);
  if (!out)
    return error(error_ ? *error_ : "import failed");

  // Every other output must be a present K/V raised with an attention block.
  for (const auto &o : g.output()) {
    if (o.name() == logitsName)
      continue;
    if (!llvm::is_contained(presentOutputs, o.name()))
      return error(formatv("graph output '{0}' is neither the logits nor a "
                           "KV-cache present output (Concat(past, new) read by "
                           "an attention block)",
                           o.name()));
  }

  SmallVector<Value> results{out};
  results.append(cacheResults.begin(), cacheResults.end());
  func::ReturnOp::create(builder, func.getLoc(), results);
  func.setType(builder.getFunctionType(body->getArgumentTypes(),
                                       ValueRange(results).getTypes()));
  for (unsigned i = 2; i < body->getNumArguments(); ++i) {
    unsigned layer = (i - 2) / 2;
    bool isKey = (i - 2) % 2 == 0;
    func.setArgAttr(i, "tfm.role",
                    builder.getStringAttr(isKey ? "key_cache" : "value_cache"));
    func.setArgAttr(i, "tfm.layer", builder.getI64IntegerAttr(layer));
  }
  if (mlir::failed(mlir::verify(module)))
    return error("internal error: the raised module does not verify");
  return llvm::Error::success();
}

void ImportedModel::releasePages(llvm::ArrayRef<char> bytes) const {
  if (source)
    source->releasePages(bytes);
}

ImportedModel::ImportedModel() = default;
ImportedModel::ImportedModel(ImportedModel &&) = default;
ImportedModel::~ImportedModel() {
  module = nullptr; // drop weight references before the file data
}

llvm::Expected<ImportedModel> kiln::importOnnxModel(StringRef path,
                                                    MLIRContext &context) {
  DialectRegistry registry;
  registerAllDialects(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();

  auto model = OnnxModel::load(path);
  if (!model)
    return model.takeError();
  ShapeInference shapes(**model);
  ImportedModel result;
  result.source = std::move(*model);
  result.module = ModuleOp::create(
      FileLineColLoc::get(StringAttr::get(&context, path), 0, 0));
  Raiser raiser(*result.source, shapes, *result.module);
  if (llvm::Error err = raiser.run())
    return std::move(err);
  return result;
}

llvm::Expected<std::string> kiln::describeOnnxShapes(StringRef path) {
  auto model = OnnxModel::load(path);
  if (!model)
    return model.takeError();
  ShapeInference shapes(**model);
  std::string out;
  llvm::raw_string_ostream os(out);
  const auto &names = shapes.symbolNames();
  for (const onnx::NodeProto *node : (*model)->nodes())
    for (const std::string &v : node->output()) {
      os << v << " = " << node->op_type() << ": ";
      const ValueFacts *f = shapes.get(v);
      if (!f || !f->hasShape) {
        os << "?\n";
        continue;
      }
      os << onnxTypeName(f->dtype) << "[";
      llvm::interleaveComma(f->shape, os,
                            [&](const Poly &p) { os << p.str(names); });
      os << "]";
      if (f->ints) {
        os << " = {";
        llvm::interleaveComma(*f->ints, os,
                              [&](const Poly &p) { os << p.str(names); });
        os << "}";
      }
      os << "\n";
    }
  return out;
}
