//===- KilnDialect.h - Kiln's pass-to-pass attributes -----------*- C++ -*-===//
//
// The names of every `kiln.*` attribute, in one place, and the dialect that
// verifies them (KilnDialect::verifyOperationAttribute checks each against
// what is written here). A pass that records something for a later pass
// adds its name here and its check to KilnDialect.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECTS_KILN_KILNDIALECT_H
#define KILN_DIALECTS_KILN_KILNDIALECT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectRegistry.h"

#include "dialects/Kiln/KilnDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Kiln/KilnAttrs.h.inc"

namespace kiln {

// --- Entry points (kiln-specialize-entry-points, kiln-bind-buffers) ---------

/// func.func: "prefill", "prefill_all", "decode" or "decode_b<N>" (decode
/// over the KV cache's first N rows), the entry point the runtime calls.
inline constexpr llvm::StringLiteral kEntryAttr = "kiln.entry";
/// Entry argument (unit): the runtime's weights buffer.
inline constexpr llvm::StringLiteral kWeightsAttr = "kiln.weights";
/// Entry argument (unit): the arena that kiln-plan-memory places buffers in.
inline constexpr llvm::StringLiteral kArenaAttr = "kiln.arena";
/// ml_program.global (i64 >= 0): its byte offset in the weights buffer.
inline constexpr llvm::StringLiteral kOffsetAttr = "kiln.offset";
/// Module (i64 >= 0): bytes of the weights and of the KV buffer.
inline constexpr llvm::StringLiteral kWeightsSizeAttr = "kiln.weights_size";
inline constexpr llvm::StringLiteral kKvSizeAttr = "kiln.kv_size";
/// Entry (array of i64 >= 0): byte offset of each cache in the KV buffer.
inline constexpr llvm::StringLiteral kKvOffsetsAttr = "kiln.kv_offsets";
/// Entry (dictionary of i64 >= 0): byte offsets of tokens, positions, logits
/// and argmax in the I/O buffer, and its size.
inline constexpr llvm::StringLiteral kIoAttr = "kiln.io";
/// Entry (unit): its last two arguments are the sampling parameters [batch,
/// 4] f32 and keys [batch] i64 of tfm.sample (kiln-specialize-entry-points
/// with `sampling`); kiln-bind-buffers gives them io slots.
inline constexpr llvm::StringLiteral kSamplingAttr = "kiln.sampling";
/// Entry (unit): the KV caches are paged pools [num_blocks, kv_heads,
/// block_size, head_dim] and the argument after them is the block table
/// [batch, max_blocks] i32 of every tfm.kv_append and tfm.attention
/// (kiln-specialize-entry-points with `kv-block-size`); kiln-bind-buffers
/// gives it an io slot.
inline constexpr llvm::StringLiteral kBlockTableAttr = "kiln.block_table";
/// Entry (type): the tensor types of the token ids, the logits and one cache.
inline constexpr llvm::StringLiteral kTokensTypeAttr = "kiln.tokens_type";
inline constexpr llvm::StringLiteral kLogitsTypeAttr = "kiln.logits_type";
inline constexpr llvm::StringLiteral kCacheTypeAttr = "kiln.cache_type";

// --- The arena (kiln-plan-memory) -------------------------------------------

/// Entry (i64 >= 0): bytes of its arena.
inline constexpr llvm::StringLiteral kArenaSizeAttr = "kiln.arena_size";
/// Entry (array of #kiln.buffer): each planned buffer, in program order.
inline constexpr llvm::StringLiteral kMemoryPlanAttr = "kiln.memory_plan";

// --- Lowering and kernels ---------------------------------------------------

/// A dictionary that kiln-lower-tfm-to-linalg puts on each linalg op it makes
/// of a tfm op whose lowering takes several ops, so that kernel formation can
/// take the group as one kernel without re-deriving it from loops. It always
/// has `op` (the tfm op's name, a string); tfm.attention's steps add
///
///   {op = "tfm.attention", id = <n-th in the function>, step = <0..6>,
///    num_heads, num_kv_heads, head_dim, scale}
///
/// (steps: 0 q.k dot products, 1 scale and causal mask, 2 row max, 3 exp,
/// 4 row sum, 5 p.v, 6 normalisation into the output; the fill of a step's
/// accumulator carries that step's dictionary; with a paged KV cache, 7 and
/// 8 gather K and V through the block table).
inline constexpr llvm::StringLiteral kRegionAttr = "kiln.region";
/// tfm.attention (i64 >= 0): its number in the function, which kRegionAttr
/// repeats on its lowered ops.
inline constexpr llvm::StringLiteral kRegionIdAttr = "kiln.region_id";
/// The hand-built kernel (a string) that computes the op; see KernelLibrary.h.
inline constexpr llvm::StringLiteral kKernelAttr = "kiln.kernel";
/// gpu.launch_func (string): the mapping its kernel came from.
inline constexpr llvm::StringLiteral kMappingAttr = "kiln.mapping";
/// gpu.launch_func (string): how the hand-built kernel divides the work
/// (KernelRecipe's LaunchShape::tiling: "128x128x32s2"), for reports.
inline constexpr llvm::StringLiteral kTilingAttr = "kiln.tiling";
/// gpu.launch_func (unit): its kernel waits for the grid before it
/// (kiln-dependent-launch), so the runtime may launch it early.
inline constexpr llvm::StringLiteral kWaitsForPreviousAttr =
    "kiln.waits_for_previous";
/// gpu.module (i64 >= 2): the most blocks a kernel may group into a
/// thread-block cluster (sm_90 and later: kiln-map-loops-to-gpu's
/// `cluster-blocks`); blocks of a cluster read each other's workgroup memory
/// (KernelBuilder::clusterLoad). Absent: no clusters.
inline constexpr llvm::StringLiteral kClusterBlocksAttr = "kiln.cluster_blocks";
/// memref.view (unit): a buffer kiln-plan-memory gave no bytes, because the
/// kernel computing its readers and writers keeps it in registers
/// (KernelRecipe::scratch); kiln-map-loops-to-gpu rejects a kernel using it.
inline constexpr llvm::StringLiteral kScratchAttr = "kiln.scratch";
/// func.func (unit): made by kiln-outline-loop-nests; the CPU target makes it
/// `no_inline` with internal linkage.
inline constexpr llvm::StringLiteral kNoInlineAttr = "kiln.no_inline";

/// Registers the kiln dialect and loads it with func (so that every module
/// Kiln's tools handle has its `kiln.*` attributes verified).
void registerKilnDialect(mlir::DialectRegistry &registry);

} // namespace kiln

#endif // KILN_DIALECTS_KILN_KILNDIALECT_H
