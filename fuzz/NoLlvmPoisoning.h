//===- NoLlvmPoisoning.h - LLVM headers without ASan annotations -*- C++
//-*-===//
//
// Force-included into fuzz-onnx's instrumented sources. LLVM's allocators
// poison the memory they hand out under ASan (__asan_poison_memory_region in
// BumpPtrAllocator) when the code that includes them is instrumented; the
// LLVM and MLIR libraries Kiln links are Debian's uninstrumented ones, whose
// copies of the same inline functions do not unpoison it, so a mix of the
// two reports use-after-poison on valid memory. The annotations become
// no-ops here, so instrumented and uninstrumented copies agree.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_FUZZ_NOLLVMPOISONING_H
#define KILN_FUZZ_NOLLVMPOISONING_H

#ifdef __cplusplus
#include "llvm/Support/Compiler.h"
#undef __asan_poison_memory_region
#undef __asan_unpoison_memory_region
#define __asan_poison_memory_region(p, size) ((void)(p), (void)(size))
#define __asan_unpoison_memory_region(p, size) ((void)(p), (void)(size))
#endif

#endif // KILN_FUZZ_NOLLVMPOISONING_H
