#pragma once
// <immintrin.h> for the whole library, included before Eigen by every qaware
// header that uses either.
//
// GCC 12's AVX-512 intrinsic headers trip its own -Wmaybe-uninitialized and
// -Wuninitialized (the self-initialised result of _mm256_undefined_pd() and
// its siblings, GCC bug 105593, fixed in GCC 13) wherever Eigen or qaware
// inline them under -march with AVX-512: thousands of warnings in a -Wall
// build. GCC places those warnings on the intrinsic headers' own lines, so
// ignoring the two warnings while the headers are read silences exactly those
// and nothing in qaware's or the user's code. It works when this is the
// first inclusion of <immintrin.h> in the translation unit: include qaware
// before Eigen and before other headers that pull in intrinsics.

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#endif
