// WebAssembly SIMD128 kernels. Same signatures and results (up to float
// summation order) as the scalar references in scalar.cpp.
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bnwasm/kernels.h"
#include "bnwasm/parallel.h"

namespace bnwasm {
namespace {

inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// ---- packed panels ----

// c += acc for the nr (1..8) valid columns of a panel; lane adds and scalar
// adds round the same, so a partial panel matches a full one bit for bit.
inline void add_panel(float* c, v128_t lo, v128_t hi, size_t nr) {
  if (nr == kPanel) {
    wasm_v128_store(c, wasm_f32x4_add(wasm_v128_load(c), lo));
    wasm_v128_store(c + 4, wasm_f32x4_add(wasm_v128_load(c + 4), hi));
    return;
  }
  alignas(16) float t[kPanel];
  wasm_v128_store(t, lo);
  wasm_v128_store(t + 4, hi);
  for (size_t jj = 0; jj < nr; ++jj) c[jj] += t[jj];
}

// c = the epilogue of columns j .. j + nr - 1 (nr <= 8) over acc (lo, hi),
// as f32_gemm_packed_epilogue__scalar computes it: lane ops round as scalar
// ones do, and v & (v > 0) is v > 0 ? v : 0.
__attribute__((noinline)) void epilogue_panel(float* c, v128_t lo, v128_t hi, size_t nr,
                                              const ConvEpilogue& ep, size_t j) {
  // The columns' constants side by side (zero past nr): whole vectors, and
  // no read past the end of the arrays.
  alignas(16) float init[kPanel] = {0}, scale[kPanel] = {0}, shift[kPanel] = {0};
  for (size_t jj = 0; jj < nr; ++jj) {
    if (ep.init != nullptr) init[jj] = ep.init[j + jj];
    if (ep.scale != nullptr) {
      scale[jj] = ep.scale[j + jj];
      shift[jj] = ep.shift[j + jj];
    }
  }
  alignas(16) float out[kPanel];
  for (int h = 0; h < 2; ++h) {
    v128_t v = wasm_f32x4_add(wasm_v128_load(init + 4 * h), h == 0 ? lo : hi);
    if (ep.scale != nullptr)
      v = wasm_f32x4_add(wasm_f32x4_mul(v, wasm_v128_load(scale + 4 * h)), wasm_v128_load(shift + 4 * h));
    if (ep.relu) v = wasm_v128_and(v, wasm_f32x4_gt(v, wasm_f32x4_splat(0.0f)));
    wasm_v128_store(out + 4 * h, v);
  }
  if (nr == kPanel) {
    wasm_v128_store(c, wasm_v128_load(out));
    wasm_v128_store(c + 4, wasm_v128_load(out + 4));
    return;
  }
  for (size_t jj = 0; jj < nr; ++jj) c[jj] = out[jj];
}

// MR rows of c by one panel, the panel of columns from j. A's element (r, p)
// is a[r * k + p], or with AT a[p * m + r] (a stored transposed). Both splat
// it from memory. Only the first `rows` (1 .. MR) are real: the others read
// the last real row again and are not stored, so a block's last rows go
// through the same tile, each row's sums made as in a full block. Without AT
// the sum runs over the runs of p [runs[2i], runs[2i + 1]) only, ascending
// (one run of all k for a dense block): each term left out has a zero in
// every one of the MR rows. With b finite such a term adds +-0, which changes
// no bit: the sums start at +0, +0 + -0 is +0, and x + 0 is x.
template <int MR, bool AT>
inline void packed_tile(float* c, const float* a, const float* panel, size_t m, size_t n, size_t k,
                        size_t rows, const uint32_t* runs, size_t count, size_t nr,
                        const ConvEpilogue* ep, size_t j) {
  v128_t lo[MR], hi[MR];
  size_t row[MR];  // the real row that row r reads
  for (int r = 0; r < MR; ++r) {
    lo[r] = hi[r] = wasm_f32x4_splat(0.0f);
    row[r] = static_cast<size_t>(r) < rows ? r : rows - 1;
  }
  if (AT) {
    // A full block's rows at constant offsets (r) in the loads (runtime
    // ones cost training 4% at batch 64, 2026-12-06).
    const float* bp = panel;
    const float* ap = a;
    for (size_t p = 0; p < k; ++p, bp += kPanel, ap += m) {
      const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
      for (int r = 0; r < MR; ++r) {
        const v128_t av = wasm_v128_load32_splat(ap + (rows == MR ? r : row[r]));
        lo[r] = wasm_f32x4_add(lo[r], wasm_f32x4_mul(av, b0));
        hi[r] = wasm_f32x4_add(hi[r], wasm_f32x4_mul(av, b1));
      }
    }
  } else {
    const float* ar[MR];  // row r's first entry
    for (int r = 0; r < MR; ++r) ar[r] = a + row[r] * k;
    for (size_t i = 0; i < count; ++i) {
      const size_t end = runs[2 * i + 1];
      const float* bp = panel + runs[2 * i] * kPanel;
      for (size_t p = runs[2 * i]; p < end; ++p, bp += kPanel) {
        const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
        for (int r = 0; r < MR; ++r) {
          const v128_t av = wasm_v128_load32_splat(ar[r] + p);
          lo[r] = wasm_f32x4_add(lo[r], wasm_f32x4_mul(av, b0));
          hi[r] = wasm_f32x4_add(hi[r], wasm_f32x4_mul(av, b1));
        }
      }
    }
  }
  for (size_t r = 0; r < rows; ++r) {
    if (ep != nullptr)
      epilogue_panel(c + r * n, lo[r], hi[r], nr, *ep, j);
    else
      add_panel(c + r * n, lo[r], hi[r], nr);
  }
}

// Bit l set where one of the MR rows of a (row r at a + r * k) is not +-0 at
// p + l (a NaN counts as not zero), for the four p from p (p + 4 <= k).
template <int MR>
inline uint32_t nonzero_bits(const float* a, size_t k, size_t p) {
  v128_t any = wasm_v128_load(a + p);
  for (int r = 1; r < MR; ++r) any = wasm_v128_or(any, wasm_v128_load(a + r * k + p));
  const v128_t magnitude = wasm_i32x4_splat(0x7fffffff);
  return wasm_i32x4_bitmask(wasm_i32x4_ne(wasm_v128_and(any, magnitude), wasm_i32x4_splat(0)));
}

// Whether an MR-row block of a is worth its runs: at least 1 / kSkipShare of
// its terms zero in every row, in at most k / kRunsPer + 1 runs, so the runs'
// own cost (a few cycles to start each) stays far below what they skip; and
// a GEMM of at least kRunsColumns columns, so that a block's runs serve
// several panels. Fashion-MNIST's test images, one thread, the dense
// network's shapes (2026-12-06, old and new kernels alternated): the layer-1
// GEMM (784 by 256) of 1,024 rows with its batch norm and ReLU took 11% less
// time, of 64 rows 12% less; the layer-2 GEMM over ReLU outputs, whose zeros
// are scattered and seldom shared by four rows, about 4% more, the cost of
// looking.
constexpr size_t kSkipShare = 8;  // 1 / 8 of the terms
constexpr size_t kRunsPer = 16;
constexpr size_t kRunsColumns = 64;

// The runs of terms of each MR-row block of a GEMM's a (block i / MR: rows
// i .. i + MR - 1), found when a thread first needs them and kept for the
// rest of the GEMM: its other column panels, and its other tasks on the same
// rows. Each of the pool's threads has its own (two threads may both find a
// block's runs, at the same time, instead of one waiting for the other), so
// no job is added to the pool; the caller sizes them all before the GEMM's
// job, since a task must not allocate.
class TermRuns {
 public:
  // Makes room for a GEMM of `blocks` blocks of k, none found yet.
  void prepare(size_t blocks, size_t k) {
    max_ = k / kRunsPer + 1;
    if (memory_.size() < blocks * (2 * max_ + 1)) memory_.resize(blocks * (2 * max_ + 1));
    counts_ = memory_.data() + blocks * 2 * max_;
    std::fill_n(counts_, blocks, kUnknown);
  }
  // Block b's runs (a at its first row), or null where it goes dense.
  template <int MR>
  const uint32_t* get(size_t b, const float* a, size_t k, size_t* count) {
    uint32_t* runs = memory_.data() + b * 2 * max_;
    if (counts_[b] == kUnknown) counts_[b] = find<MR>(runs, a, k);
    *count = counts_[b];
    return counts_[b] == kDense ? nullptr : runs;
  }

 private:
  static constexpr uint32_t kUnknown = UINT32_MAX, kDense = UINT32_MAX - 1;
  // The runs of p where some one of the MR rows of a is not +-0, as [start,
  // end) pairs; their count, or kDense when they would skip too little or be
  // too many. Four p at a time: a group inside a run or between runs costs one
  // compare.
  template <int MR>
  uint32_t find(uint32_t* runs, const float* a, size_t k) const {
    // First the zeros and the runs' starts counted without branches, where
    // most blocks of dense data or of scattered zeros (ReLU outputs) stop.
    size_t zeros = 0, starts = 0;
    uint32_t last = 0;  // the previous group's bit 3
    for (size_t p = 0; p + 4 <= k; p += 4) {
      const uint32_t bits = nonzero_bits<MR>(a, k, p);
      zeros += 4 - __builtin_popcount(bits);
      starts += __builtin_popcount(bits & ~((bits << 1) | last) & 15u);
      last = bits >> 3;
    }
    if (zeros * kSkipShare < k || starts > max_) return kDense;
    size_t count = 0, covered = 0, start = 0;
    bool inside = false;
    auto at = [&](size_t p, bool nonzero) {  // false: too many runs
      if (nonzero == inside) return true;
      inside = nonzero;
      if (nonzero) {
        start = p;
        return true;
      }
      if (count == max_) return false;
      runs[2 * count] = static_cast<uint32_t>(start);
      runs[2 * count + 1] = static_cast<uint32_t>(p);
      covered += p - start;
      ++count;
      return true;
    };
    for (size_t p = 0; p <= k;) {
      // Four p at once, then the last few one by one, and at k a zero that
      // closes the last run.
      uint32_t bits = 0, lanes = 1;
      if (p + 4 <= k) {
        bits = nonzero_bits<MR>(a, k, p);
        lanes = 4;
        if (bits == (inside ? 15u : 0u)) {
          p += 4;
          continue;
        }
      } else {
        for (int r = 0; r < MR && p < k; ++r) bits |= a[r * k + p] != 0.0f;
      }
      for (uint32_t l = 0; l < lanes; ++l)
        if (!at(p + l, (bits >> l) & 1)) return kDense;
      p += lanes;
    }
    return (k - covered) * kSkipShare < k ? kDense : static_cast<uint32_t>(count);
  }
  size_t max_ = 0;                // runs per block at most
  std::vector<uint32_t> memory_;  // block b's runs at b * 2 * max_, then the counts
  uint32_t* counts_ = nullptr;    // per block: how many runs, kDense or kUnknown
};
std::vector<TermRuns> g_runs;  // one per thread of the pool

// The most entries of a row that f32_gemm_packed_sparse_1x32__wasmsimd lists
// (8 KiB of stack).
constexpr size_t kMaxList = 4096;

// MR rows of c, the panels from column j_begin to j_end (multiples of kPanel,
// or n). The panel loop is inside the row block, so the MR rows of a stay in
// L1 while b streams through.
template <int MR, bool AT>
inline void packed_rows(float* c, const float* a, const float* packed, size_t m, size_t n,
                        size_t k, size_t j_begin, size_t j_end, const ConvEpilogue* ep,
                        size_t rows, const uint32_t* runs, size_t count) {
  for (size_t j0 = j_begin; j0 < j_end; j0 += kPanel) {
    const size_t nr = j_end - j0 < kPanel ? j_end - j0 : kPanel;
    packed_tile<MR, AT>(c + j0, a, packed + j0 * k, m, n, k, rows, runs, count, nr, ep, j0);
  }
}

// Rows [r0, r1) by columns [j0, j1) of c, on the calling thread. One copy
// of the tiles for every caller: inlined, each would carry its own.
template <int MR, bool AT>
__attribute__((noinline)) void packed_block(float* c, const float* a, const float* packed, size_t m, size_t n, size_t k,
                  size_t r0, size_t r1, size_t j0, size_t j1, const ConvEpilogue* ep,
                  TermRuns* skip) {
  const size_t row_step = AT ? 1 : k;
  const uint32_t whole[2] = {0, static_cast<uint32_t>(k)};
  for (size_t i = r0; i < r1; i += MR) {
    const size_t rows = r1 - i < MR ? r1 - i : MR;
    size_t count = 1;
    const uint32_t* runs = skip != nullptr && rows == MR ? skip->get<MR>(i / MR, a + i * k, k, &count) : nullptr;
    if (runs == nullptr) {
      runs = whole;
      count = 1;
    }
    packed_rows<MR, AT>(c + i * n, a + i * row_step, packed, m, n, k, j0, j1, ep, rows, runs, count);
  }
}

template <int MR, bool AT, bool MAY_SKIP = true>
void packed_gemm(float* c, const float* a, const float* packed, size_t m, size_t n, size_t k,
                 const ConvEpilogue* ep = nullptr) {
  // Row i of a starts at a + i * k, or at a + i when a is stored transposed.
  // Pieces of rows (a multiple of MR) run in parallel. With fewer row pieces
  // than the pool takes (a batch of 64), the panels are split too, into
  // groups of columns: a task is (group, rows), groups outermost, so each
  // thread's run of tasks reads its own columns of b (the columns it packed)
  // instead of all of b.
  const size_t g = grain(m, n * k, MR);
  const size_t row_pieces = pieces(m, g);
  const size_t panels = pieces(n, kPanel);
  size_t per_group = panels;
  if (row_pieces < kMaxPieces) {
    per_group = pieces(panels, kMaxPieces / row_pieces);
    const size_t least = pieces(kMinWork, g * k * kPanel);
    if (per_group < least) per_group = least;
    if (per_group > panels) per_group = panels;
  }
  const size_t span = per_group * kPanel;  // columns per group
  // Rows of pixels or ReLU outputs have zeros: a term whose MR entries are
  // all zero is skipped in every panel (TermRuns), when there are enough
  // panels to repay the looking. Not in a GEMM inside a task (a
  // convolution's image), which could not make room for them; nor where b may
  // not be finite (MAY_SKIP false: f32_gemm_packed_every_term).
  const bool skip = MAY_SKIP && !AT && n >= kRunsColumns && !parallel_inside();
  if (skip) {
    g_runs.resize(thread_count());
    for (TermRuns& runs : g_runs) runs.prepare(m / MR, k);
  }
  parallel_for(row_pieces * pieces(panels, per_group), [&](size_t t, size_t worker) {
    const auto [r0, r1] = piece(t % row_pieces, m, g);
    const auto [j0, j1] = piece(t / row_pieces, n, span);
    packed_block<MR, AT>(c, a, packed, m, n, k, r0, r1, j0, j1, ep, skip ? &g_runs[worker] : nullptr);
  });
}

// One row of c, P panels at once (2 * P independent accumulators hide the add
// latency that a single panel's two chains would expose), over the listed p
// only (ascending): the terms left out have a[p] == 0.
template <int P>
inline void row_panels_listed(float* c, const float* a, const uint16_t* list, size_t count,
                              const float* packed, size_t n, size_t k, size_t j0) {
  v128_t lo[P], hi[P];
  for (int q = 0; q < P; ++q) lo[q] = hi[q] = wasm_f32x4_splat(0.0f);
  const float* b0 = packed + j0 * k;
  const size_t stride = kPanel * k;
  for (size_t t = 0; t < count; ++t) {
    const size_t p = list[t];
    const v128_t av = wasm_v128_load32_splat(a + p);
    const float* bp = b0 + p * kPanel;
    for (int q = 0; q < P; ++q) {
      lo[q] = wasm_f32x4_add(lo[q], wasm_f32x4_mul(av, wasm_v128_load(bp + q * stride)));
      hi[q] = wasm_f32x4_add(hi[q], wasm_f32x4_mul(av, wasm_v128_load(bp + q * stride + 4)));
    }
  }
  for (int q = 0; q < P; ++q) {
    const size_t j = j0 + q * kPanel;
    add_panel(c + j, lo[q], hi[q], n - j < kPanel ? n - j : kPanel);
  }
}

// ---- direct convolution ----

// v = init + acc, then the inference batch norm and ReLU, as
// f32_conv_direct__scalar writes them: lane ops round as scalar ones do, and
// v & (v > 0) is v > 0 ? v : 0 (NaN and -0 give +0).
inline v128_t conv_epilogue(v128_t acc, size_t i, const ConvEpilogue& ep) {
  v128_t v = wasm_f32x4_add(wasm_f32x4_splat(ep.init != nullptr ? ep.init[i] : 0.0f), acc);
  if (ep.scale != nullptr)
    v = wasm_f32x4_add(wasm_f32x4_mul(v, wasm_f32x4_splat(ep.scale[i])),
                       wasm_f32x4_splat(ep.shift[i]));
  if (ep.relu) v = wasm_v128_and(v, wasm_f32x4_gt(v, wasm_f32x4_splat(0.0f)));
  return v;
}

// The nr (1 .. 4 NV) leading columns of one output row of filter i.
template <int NV>
inline void conv_store(float* o, const v128_t* acc, size_t i, const ConvEpilogue& ep, size_t nr) {
  if (nr == 4 * NV) {
    for (int v = 0; v < NV; ++v) wasm_v128_store(o + 4 * v, conv_epilogue(acc[v], i, ep));
    return;
  }
  alignas(16) float t[4 * NV];
  for (int v = 0; v < NV; ++v) wasm_v128_store(t + 4 * v, conv_epilogue(acc[v], i, ep));
  for (size_t j = 0; j < nr; ++j) o[j] = t[j];
}

// Filters i0 .. i0 + 3 (mr of them stored) by 4 * NV output columns from ox
// of output row oy (nr of them stored). The four weights of a tap are one
// vector of the packed block, so one pointer walks them; the taps of the
// columns are neighbouring floats of a shifted copy.
template <int NV>
inline void conv_tile(float* out, const float* x, const float* wblock, const ConvEpilogue& ep,
                      const PaddedConv& s, size_t i0, size_t mr, size_t oy, size_t ox,
                      size_t nr) {
  v128_t acc[4][NV];
  for (int r = 0; r < 4; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = wasm_f32x4_splat(0.0f);
  const float* xb = x + oy * s.SH * s.WP + ox;
  const float* wp = wblock;
  const size_t copy = s.HP * s.WP;  // from one shifted copy to the next
  for (size_t c = 0; c < s.C; ++c)
    for (size_t ky = 0; ky < s.KH; ++ky) {
      const float* xr = xb + (c * s.KW * s.HP + ky) * s.WP;
      for (size_t kx = 0; kx < s.KW; ++kx, xr += copy, wp += 4) {
        v128_t b[NV];
        for (int v = 0; v < NV; ++v) b[v] = wasm_v128_load(xr + 4 * v);
        for (int r = 0; r < 4; ++r) {
          const v128_t av = wasm_v128_load32_splat(wp + r);
          for (int v = 0; v < NV; ++v) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_f32x4_mul(av, b[v]));
        }
      }
    }
  // Rows by constant index, so acc stays in registers (a loop to mr would
  // index it at run time and keep it in memory).
  const size_t at = oy * s.OW + ox, plane = s.OH * s.OW;
  conv_store<NV>(out + i0 * plane + at, acc[0], i0, ep, nr);
  if (mr > 1) conv_store<NV>(out + (i0 + 1) * plane + at, acc[1], i0 + 1, ep, nr);
  if (mr > 2) conv_store<NV>(out + (i0 + 2) * plane + at, acc[2], i0 + 2, ep, nr);
  if (mr > 3) conv_store<NV>(out + (i0 + 3) * plane + at, acc[3], i0 + 3, ep, nr);
}

// ---- Winograd F(2x2, 3x3) ----

// The input transform of four neighbouring tiles of one row, one lane each:
// the tiles start two columns apart, so a block's column j is the even (j =
// 0, 2) or odd (j = 1, 3) floats of two loads. Writes v[xi * stride], xi < 16.
inline void winograd_input4(float* v, size_t stride, const float* d, size_t WP) {
  v128_t e[4][4];
  for (int i = 0; i < 4; ++i, d += WP) {
    const v128_t a0 = wasm_v128_load(d), a1 = wasm_v128_load(d + 4);
    const v128_t b0 = wasm_v128_load(d + 2), b1 = wasm_v128_load(d + 6);
    const v128_t d0 = wasm_i32x4_shuffle(a0, a1, 0, 2, 4, 6);
    const v128_t d1 = wasm_i32x4_shuffle(a0, a1, 1, 3, 5, 7);
    const v128_t d2 = wasm_i32x4_shuffle(b0, b1, 0, 2, 4, 6);
    const v128_t d3 = wasm_i32x4_shuffle(b0, b1, 1, 3, 5, 7);
    e[i][0] = wasm_f32x4_sub(d0, d2);
    e[i][1] = wasm_f32x4_add(d1, d2);
    e[i][2] = wasm_f32x4_sub(d2, d1);
    e[i][3] = wasm_f32x4_sub(d1, d3);
  }
  for (int j = 0; j < 4; ++j) {
    wasm_v128_store(v + j * stride, wasm_f32x4_sub(e[0][j], e[2][j]));
    wasm_v128_store(v + (4 + j) * stride, wasm_f32x4_add(e[1][j], e[2][j]));
    wasm_v128_store(v + (8 + j) * stride, wasm_f32x4_sub(e[2][j], e[1][j]));
    wasm_v128_store(v + (12 + j) * stride, wasm_f32x4_sub(e[1][j], e[3][j]));
  }
}

// The n leading floats of lo, hi (n <= 8) to o.
inline void store_leading(float* o, v128_t lo, v128_t hi, size_t n) {
  if (n >= 4) wasm_v128_store(o, lo);
  if (n == 8) wasm_v128_store(o + 4, hi);
  if (n == 4 || n == 8) return;
  alignas(16) float t[8];
  wasm_v128_store(t, lo);
  wasm_v128_store(t + 4, hi);
  for (size_t j = n / 4 * 4; j < n; ++j) o[j] = t[j];
}

// Four tiles (tx .. tx + 3 of row ty) of filter i from their 16 sums m[xi]
// (one lane per tile): the output transform, the epilogue, the pool.
inline void winograd_output4(float* out, const v128_t* m, size_t i, size_t ty, size_t tx,
                             const ConvEpilogue& ep, const Winograd23Conv& s) {
  v128_t r0[4], r1[4];
  for (int j = 0; j < 4; ++j) {
    r0[j] = wasm_f32x4_add(wasm_f32x4_add(m[j], m[4 + j]), m[8 + j]);
    r1[j] = wasm_f32x4_sub(wasm_f32x4_sub(m[4 + j], m[8 + j]), m[12 + j]);
  }
  const v128_t o0 = conv_epilogue(wasm_f32x4_add(wasm_f32x4_add(r0[0], r0[1]), r0[2]), i, ep);
  const v128_t o1 = conv_epilogue(wasm_f32x4_sub(wasm_f32x4_sub(r0[1], r0[2]), r0[3]), i, ep);
  const v128_t o2 = conv_epilogue(wasm_f32x4_add(wasm_f32x4_add(r1[0], r1[1]), r1[2]), i, ep);
  const v128_t o3 = conv_epilogue(wasm_f32x4_sub(wasm_f32x4_sub(r1[1], r1[2]), r1[3]), i, ep);
  if (s.pool) {
    const size_t PH = s.OH / 2, PW = s.OW / 2;
    if (ty >= PH || tx >= PW) return;
    const v128_t best = wasm_f32x4_pmax(wasm_f32x4_pmax(wasm_f32x4_pmax(o0, o1), o2), o3);
    float* o = out + (i * PH + ty) * PW + tx;
    const size_t n = PW - tx < 4 ? PW - tx : 4;
    store_leading(o, best, best, n);
    return;
  }
  // Tile outputs (0, 0), (0, 1) interleaved are row 2 ty's columns 2 tx ..
  const size_t ox = 2 * tx;
  if (ox >= s.OW) return;
  const size_t n = s.OW - ox < 8 ? s.OW - ox : 8;
  float* o = out + (i * s.OH + 2 * ty) * s.OW + ox;
  store_leading(o, wasm_i32x4_shuffle(o0, o1, 0, 4, 1, 5), wasm_i32x4_shuffle(o0, o1, 2, 6, 3, 7), n);
  if (2 * ty + 1 < s.OH)
    store_leading(o + s.OW, wasm_i32x4_shuffle(o2, o3, 0, 4, 1, 5),
                  wasm_i32x4_shuffle(o2, o3, 2, 6, 3, 7), n);
}

// Filters i0 .. i0 + 3 (mr of them stored) by the 4 * NV tiles from tx of
// row ty: for each tile position xi, the sum over channels in registers (8
// accumulators), kept in m; then each filter's output transform.
template <int NV>
inline void winograd_block(float* out, const float* v, const float* u, const ConvEpilogue& ep,
                           const Winograd23Conv& s, size_t i0, size_t mr, size_t ty, size_t tx) {
  alignas(16) v128_t m[4][NV][16];
  const size_t T = s.tiles();
  const float* vb = v + ty * s.TWP() + tx;
  const float* ub = u + i0 * s.C;  // block i0 / 4 of position 0
  const size_t ustride = (s.F + 3) / 4 * 4 * s.C, vstride = s.C * T;
  for (size_t xi = 0; xi < 16; ++xi) {
    v128_t acc[4][NV];
    for (int r = 0; r < 4; ++r)
      for (int q = 0; q < NV; ++q) acc[r][q] = wasm_f32x4_splat(0.0f);
    const float* vc = vb + xi * vstride;
    const float* uc = ub + xi * ustride;
    for (size_t c = 0; c < s.C; ++c, vc += T, uc += 4) {
      v128_t b[NV];
      for (int q = 0; q < NV; ++q) b[q] = wasm_v128_load(vc + 4 * q);
      for (int r = 0; r < 4; ++r) {
        const v128_t a = wasm_v128_load32_splat(uc + r);
        for (int q = 0; q < NV; ++q) acc[r][q] = wasm_f32x4_add(acc[r][q], wasm_f32x4_mul(a, b[q]));
      }
    }
    for (int r = 0; r < 4; ++r)
      for (int q = 0; q < NV; ++q) m[r][q][xi] = acc[r][q];
  }
  for (size_t r = 0; r < mr; ++r)
    for (int q = 0; q < NV; ++q) winograd_output4(out, m[r][q], i0 + r, ty, tx + 4 * q, ep, s);
}

}  // namespace

void f32_gemm_packed_4x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                   size_t n, size_t k) {
  // c is (m, n); a is (m, k); packed holds b (k, n). c += a * b.
  packed_gemm<4, false>(c, a, packed, m, n, k);
}
void f32_gemm_packed_every_term_4x8__wasmsimd(float* c, const float* a, const float* packed,
                                              size_t m, size_t n, size_t k) {
  packed_gemm<4, false, false>(c, a, packed, m, n, k);
}
void f32_gemm_packed_epilogue_4x8__wasmsimd(float* c, const float* a, const float* packed,
                                            size_t m, size_t n, size_t k, const ConvEpilogue& ep) {
  packed_gemm<4, false>(c, a, packed, m, n, k, &ep);
}
void f32_epilogue_finish__wasmsimd(float* c, size_t n, const ConvEpilogue& ep) {
  // c[j] = ep.finish(c[j], j): lane ops round as scalar ones do, and
  // v & (v > 0) is v > 0 ? v : 0. (A scalar loop's ReLU is a branch on the
  // sign in V8's code, mispredicted for about half the values.)
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    v128_t v = wasm_v128_load(c + j);
    if (ep.scale != nullptr)
      v = wasm_f32x4_add(wasm_f32x4_mul(v, wasm_v128_load(ep.scale + j)), wasm_v128_load(ep.shift + j));
    if (ep.relu) v = wasm_v128_and(v, wasm_f32x4_gt(v, wasm_f32x4_splat(0.0f)));
    wasm_v128_store(c + j, v);
  }
  for (; j < n; ++j) c[j] = ep.finish(c[j], j);
}

void f32_gemm_tn_packed_4x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                      size_t n, size_t k) {
  // c is (m, n); a is (k, m); packed holds b (k, n). c += a^T * b.
  packed_gemm<4, true>(c, a, packed, m, n, k);
}

void f32_gemm_packed_sparse_1x32__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                           size_t n, size_t k) {
  // c is (m, n); a is (m, k); packed holds b (k, n), finite. Row by row.
  // A row without zeros goes through its list too: on a row of 784 without
  // zeros by 256 columns, the listed loop took the time of a plain one
  // (28.1-29.5 against 28.3-29.8 us, 2026-12-06), and one loop keeps the
  // module small. Rows longer than the list (on the stack: this may run in
  // a task, which must not allocate) go through the 4x8 tile, which makes
  // the row's sums the same way.
  if (k > kMaxList) {
    packed_gemm<4, false>(c, a, packed, m, n, k);
    return;
  }
  uint16_t list[kMaxList];
  const size_t panels = (n + kPanel - 1) / kPanel;
  for (size_t i = 0; i < m; ++i) {
    float* ci = c + i * n;
    const float* ai = a + i * k;
    size_t count = 0;
    for (size_t p = 0; p < k; ++p) {
      list[count] = static_cast<uint16_t>(p);
      count += ai[p] != 0.0f;
    }
    size_t q = 0;
    for (; q + 4 <= panels; q += 4)
      row_panels_listed<4>(ci, ai, list, count, packed, n, k, q * kPanel);
    for (; q < panels; ++q) row_panels_listed<1>(ci, ai, list, count, packed, n, k, q * kPanel);
  }
}

void f32_pack_t_x8__wasmsimd(float* packed, const float* bt, size_t k, size_t n) {
  // bt is (n, k); packed is ceil(n / 8) panels of (k, 8). A full panel reads
  // four p at a time from each of its 8 rows and writes them as two 4x4
  // transposes; partial panels and the last k % 4 go through the scalar code.
  const size_t k4 = k & ~size_t(3);
  size_t j0 = 0;
  for (; j0 + kPanel <= n; j0 += kPanel) {
    const float* r = bt + j0 * k;
    float* out = packed + j0 * k;
    for (size_t p = 0; p < k4; p += 4) {
      for (int half = 0; half < 2; ++half) {
        const float* h = r + half * 4 * k + p;
        const v128_t v0 = wasm_v128_load(h), v1 = wasm_v128_load(h + k);
        const v128_t v2 = wasm_v128_load(h + 2 * k), v3 = wasm_v128_load(h + 3 * k);
        const v128_t lo01 = wasm_i32x4_shuffle(v0, v1, 0, 4, 1, 5);
        const v128_t hi01 = wasm_i32x4_shuffle(v0, v1, 2, 6, 3, 7);
        const v128_t lo23 = wasm_i32x4_shuffle(v2, v3, 0, 4, 1, 5);
        const v128_t hi23 = wasm_i32x4_shuffle(v2, v3, 2, 6, 3, 7);
        float* o = out + p * kPanel + half * 4;
        wasm_v128_store(o, wasm_i32x4_shuffle(lo01, lo23, 0, 1, 4, 5));
        wasm_v128_store(o + kPanel, wasm_i32x4_shuffle(lo01, lo23, 2, 3, 6, 7));
        wasm_v128_store(o + 2 * kPanel, wasm_i32x4_shuffle(hi01, hi23, 0, 1, 4, 5));
        wasm_v128_store(o + 3 * kPanel, wasm_i32x4_shuffle(hi01, hi23, 2, 3, 6, 7));
      }
    }
    for (size_t p = k4; p < k; ++p)
      for (size_t jj = 0; jj < kPanel; ++jj) out[p * kPanel + jj] = r[jj * k + p];
  }
  if (j0 < n) f32_pack_t_x8__scalar(packed + j0 * k, bt + j0 * k, k, n - j0);
}

bool f32_adam__wasmsimd(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2,
                        float c1, float c2, float step_size, float inv_sqrt_bc2, float eps,
                        float wd, bool write) {
  // The scalar reference's operations in the same order, four lanes at a
  // time: sqrt and division round the same in a lane, so results are equal.
  const v128_t vb1 = wasm_f32x4_splat(b1), vb2 = wasm_f32x4_splat(b2);
  const v128_t vc1 = wasm_f32x4_splat(c1), vc2 = wasm_f32x4_splat(c2);
  const v128_t vstep = wasm_f32x4_splat(step_size), vbc2 = wasm_f32x4_splat(inv_sqrt_bc2);
  const v128_t veps = wasm_f32x4_splat(eps), vwd = wasm_f32x4_splat(wd);
  const v128_t zero = wasm_f32x4_splat(0.0f);
  v128_t acc = zero;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t pi = wasm_v128_load(p + i);
    const v128_t d = wasm_f32x4_add(wasm_v128_load(g + i), wasm_f32x4_mul(vwd, pi));
    const v128_t nm =
        wasm_f32x4_add(wasm_f32x4_mul(vb1, wasm_v128_load(m + i)), wasm_f32x4_mul(vc1, d));
    const v128_t nv = wasm_f32x4_add(wasm_f32x4_mul(vb2, wasm_v128_load(v + i)),
                                     wasm_f32x4_mul(wasm_f32x4_mul(vc2, d), d));
    const v128_t den = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_sqrt(nv), vbc2), veps);
    const v128_t np = wasm_f32x4_sub(pi, wasm_f32x4_div(wasm_f32x4_mul(vstep, nm), den));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_add(wasm_f32x4_add(np, nm), nv), zero));
    if (write) {
      wasm_v128_store(p + i, np);
      wasm_v128_store(m + i, nm);
      wasm_v128_store(v + i, nv);
    }
  }
  const bool tail = f32_adam__scalar(p + i, m + i, v + i, g + i, n - i, b1, b2, c1, c2, step_size,
                                     inv_sqrt_bc2, eps, wd, write);
  return tail && hsum(acc) == 0.0f;
}

uint32_t f32_abs_peak__wasmsimd(const float* x, size_t n) {
  // Integer max over the bits with the sign cleared, two chains. The last
  // four values are read again when n is not a multiple of 8: a max does not
  // mind seeing a value twice.
  if (n < 4) return f32_abs_peak__scalar(x, n);
  v128_t p0 = wasm_f32x4_abs(wasm_v128_load(x + n - 4)), p1 = p0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    p0 = wasm_u32x4_max(p0, wasm_f32x4_abs(wasm_v128_load(x + i)));
    p1 = wasm_u32x4_max(p1, wasm_f32x4_abs(wasm_v128_load(x + i + 4)));
  }
  if (n % 8 >= 4) p0 = wasm_u32x4_max(p0, wasm_f32x4_abs(wasm_v128_load(x + n / 8 * 8)));
  const v128_t p = wasm_u32x4_max(p0, p1);
  const uint32_t a = wasm_u32x4_extract_lane(p, 0), b = wasm_u32x4_extract_lane(p, 1);
  const uint32_t c = wasm_u32x4_extract_lane(p, 2), d = wasm_u32x4_extract_lane(p, 3);
  return std::max(std::max(a, b), std::max(c, d));
}

void f32_colmeanvar__wasmsimd(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  // in is (rows, cols); mean, var are (cols). Two passes: the second sums
  // squares of centred values, so a large mean does not cancel the variance.
  // Pieces of columns (a multiple of 4) run in parallel.
  const float inv = 1.0f / static_cast<float>(rows);
  const v128_t vinv = wasm_f32x4_splat(inv);
  const size_t g = grain(cols, 2 * rows, 4);
  parallel_for(pieces(cols, g), [&](size_t t, size_t) {
  const auto [j0, j1] = piece(t, cols, g);
  size_t j = j0;
  for (; j + 4 <= j1; j += 4) {
    v128_t s = wasm_f32x4_splat(0.0f);
    for (size_t i = 0; i < rows; ++i) s = wasm_f32x4_add(s, wasm_v128_load(in + i * cols + j));
    const v128_t mu = wasm_f32x4_mul(s, vinv);
    v128_t q = wasm_f32x4_splat(0.0f);
    for (size_t i = 0; i < rows; ++i) {
      const v128_t d = wasm_f32x4_sub(wasm_v128_load(in + i * cols + j), mu);
      q = wasm_f32x4_add(q, wasm_f32x4_mul(d, d));
    }
    wasm_v128_store(mean + j, mu);
    wasm_v128_store(var + j, wasm_f32x4_mul(q, vinv));
  }
  for (; j < j1; ++j) {
    float s = 0.0f;
    for (size_t i = 0; i < rows; ++i) s += in[i * cols + j];
    const float mu = s * inv;
    float q = 0.0f;
    for (size_t i = 0; i < rows; ++i) {
      const float d = in[i * cols + j] - mu;
      q += d * d;
    }
    mean[j] = mu;
    var[j] = q * inv;
  }
  });
}

void f32_chanmeanvar__wasmsimd(float* mean, float* var, const float* in, size_t B, size_t C,
                               size_t S) {
  // in is (B, C, S); mean, var are (C). Each run of S values in 8 lanes (two
  // vectors, so two adds are in flight), folded to one float, the runs in double.
  const double inv = 1.0 / static_cast<double>(B * S);
  const size_t g = grain(C, 2 * B * S);
  parallel_for(pieces(C, g), [&](size_t t, size_t) {
  const auto [c0, c1] = piece(t, C, g);
  for (size_t c = c0; c < c1; ++c) {
    double total = 0;
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + (b * C + c) * S;
      v128_t s0 = wasm_f32x4_splat(0.0f), s1 = s0;
      size_t i = 0;
      for (; i + 8 <= S; i += 8) {
        s0 = wasm_f32x4_add(s0, wasm_v128_load(x + i));
        s1 = wasm_f32x4_add(s1, wasm_v128_load(x + i + 4));
      }
      float s = hsum(wasm_f32x4_add(s0, s1));
      for (; i < S; ++i) s += x[i];
      total += s;
    }
    const float mu = static_cast<float>(total * inv);
    const v128_t vmu = wasm_f32x4_splat(mu);
    double squares = 0;
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + (b * C + c) * S;
      v128_t q0 = wasm_f32x4_splat(0.0f), q1 = q0;
      size_t i = 0;
      for (; i + 8 <= S; i += 8) {
        const v128_t d0 = wasm_f32x4_sub(wasm_v128_load(x + i), vmu);
        const v128_t d1 = wasm_f32x4_sub(wasm_v128_load(x + i + 4), vmu);
        q0 = wasm_f32x4_add(q0, wasm_f32x4_mul(d0, d0));
        q1 = wasm_f32x4_add(q1, wasm_f32x4_mul(d1, d1));
      }
      float q = hsum(wasm_f32x4_add(q0, q1));
      for (; i < S; ++i) {
        const float d = x[i] - mu;
        q += d * d;
      }
      squares += q;
    }
    mean[c] = mu;
    var[c] = static_cast<float>(squares * inv);
  }
  });
}

void f32_chandsums__wasmsimd(double* sum_dy, double* sum_dy_xc, const float* dout, const float* in,
                             const float* mean, size_t B, size_t C, size_t S, size_t stride) {
  // dout, in are B rows (stride apart) of (C, S); sum_dy, sum_dy_xc, mean are (C)
  for (size_t c = 0; c < C; ++c) {
    double total = 0, total_xc = 0;
    const float mu = mean[c];
    const v128_t vmu = wasm_f32x4_splat(mu);
    for (size_t b = 0; b < B; ++b) {
      const float* dy = dout + b * stride + c * S;
      const float* x = in + b * stride + c * S;
      v128_t s = wasm_f32x4_splat(0.0f), sx = s;
      size_t i = 0;
      for (; i + 4 <= S; i += 4) {
        const v128_t d = wasm_v128_load(dy + i);
        s = wasm_f32x4_add(s, d);
        sx = wasm_f32x4_add(sx, wasm_f32x4_mul(d, wasm_f32x4_sub(wasm_v128_load(x + i), vmu)));
      }
      float s1 = hsum(s), sx1 = hsum(sx);
      for (; i < S; ++i) {
        s1 += dy[i];
        sx1 += dy[i] * (x[i] - mu);
      }
      total += s1;
      total_xc += sx1;
    }
    sum_dy[c] = total;
    sum_dy_xc[c] = total_xc;
  }
}

void f32_conv_direct_4x8__wasmsimd(float* out, const float* x, const float* wp,
                                   const ConvEpilogue& ep, const PaddedConv& s) {
  // out is (F, OH, OW); x is (C, KW, HP, WP), readable input_size() floats;
  // wp is (F, K) packed in blocks of 4 rows. Each tile of output columns (8,
  // and a last 4 when no more remain) goes through every block of 4 filters
  // while its taps are in L1; the packed weight (F K floats) stays there too.
  // (Blocks outer, columns inner streamed the copies, 43 KiB for the second
  // Fashion-MNIST layer, from L2 once per block.)
  const size_t K = s.C * s.KH * s.KW;
  for (size_t oy = 0; oy < s.OH; ++oy)
    for (size_t ox = 0; ox < s.OW; ox += 8) {
      const size_t nr = s.OW - ox < 8 ? s.OW - ox : 8;
      for (size_t i0 = 0; i0 < s.F; i0 += 4) {
        const size_t mr = s.F - i0 < 4 ? s.F - i0 : 4;
        if (nr > 4)
          conv_tile<2>(out, x, wp + i0 * K, ep, s, i0, mr, oy, ox, nr);
        else
          conv_tile<1>(out, x, wp + i0 * K, ep, s, i0, mr, oy, ox, nr);
      }
    }
}

void f32_maxpool2x2__wasmsimd(float* out, const float* in, size_t planes, size_t H, size_t W,
                              size_t OH, size_t OW) {
  // in is (planes, H, W); out is (planes, OH, OW). Four windows at a time:
  // two loads per input row, split into the windows' left (even) and right
  // (odd) columns. pmax(a, b) is a < b ? b : a, so folding the window in
  // reading order keeps the first maximum, as the scalar code does.
  for (size_t plane = 0; plane < planes; ++plane)
    for (size_t oy = 0; oy < OH; ++oy) {
      const float* r0 = in + (plane * H + 2 * oy) * W;
      const float* r1 = r0 + W;
      float* o = out + (plane * OH + oy) * OW;
      size_t ox = 0;
      for (; ox + 4 <= OW; ox += 4) {
        const v128_t a0 = wasm_v128_load(r0 + 2 * ox), a1 = wasm_v128_load(r0 + 2 * ox + 4);
        const v128_t b0 = wasm_v128_load(r1 + 2 * ox), b1 = wasm_v128_load(r1 + 2 * ox + 4);
        v128_t m = wasm_f32x4_pmax(wasm_i32x4_shuffle(a0, a1, 0, 2, 4, 6),
                                   wasm_i32x4_shuffle(a0, a1, 1, 3, 5, 7));
        m = wasm_f32x4_pmax(m, wasm_i32x4_shuffle(b0, b1, 0, 2, 4, 6));
        m = wasm_f32x4_pmax(m, wasm_i32x4_shuffle(b0, b1, 1, 3, 5, 7));
        wasm_v128_store(o + ox, m);
      }
      for (; ox < OW; ++ox) {
        float best = r0[2 * ox];
        if (r0[2 * ox + 1] > best) best = r0[2 * ox + 1];
        if (r1[2 * ox] > best) best = r1[2 * ox];
        if (r1[2 * ox + 1] > best) best = r1[2 * ox + 1];
        o[ox] = best;
      }
    }
}

void f32_conv3x3_winograd23_4x8__wasmsimd(float* out, const float* x, const float* u, float* v,
                                          const ConvEpilogue& ep, const Winograd23Conv& s) {
  // x is (C, HP, WP); u is (16, FP / 4, C, 4); v is (16, C, T). Each block of
  // tiles (8, or the last 4 of a row) goes through every block of 4 filters
  // while its transformed inputs (16 C floats per tile) are in L1.
  const size_t T = s.tiles(), TWP = s.TWP(), HP = s.HP(), WP = s.WP();
  for (size_t c = 0; c < s.C; ++c)
    for (size_t ty = 0; ty < s.TH; ++ty)
      for (size_t tx = 0; tx < TWP; tx += 4)
        winograd_input4(v + c * T + ty * TWP + tx, s.C * T, x + (c * HP + 2 * ty) * WP + 2 * tx,
                        WP);
  for (size_t ty = 0; ty < s.TH; ++ty)
    for (size_t tx = 0; tx < TWP; tx += 8)
      for (size_t i0 = 0; i0 < s.F; i0 += 4) {
        const size_t mr = s.F - i0 < 4 ? s.F - i0 : 4;
        if (TWP - tx >= 8)
          winograd_block<2>(out, v, u, ep, s, i0, mr, ty, tx);
        else
          winograd_block<1>(out, v, u, ep, s, i0, mr, ty, tx);
      }
}


}  // namespace bnwasm
#endif  // __wasm_simd128__
