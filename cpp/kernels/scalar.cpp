// Scalar reference kernels: the definition every SIMD variant is tested against.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "bnwasm/kernels.h"
#include "bnwasm/parallel.h"

namespace bnwasm {

void f32_gemm__scalar(float* c, const float* a, const float* b, size_t m, size_t n, size_t k) {
  // c is (m, n); a is (m, k); b is (k, n)
  for (size_t i = 0; i < m; ++i) {
    float* ci = c + i * n;
    for (size_t p = 0; p < k; ++p) {
      const float aip = a[i * k + p];
      const float* bp = b + p * n;
      for (size_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
    }
  }
}

void f32_colmeanvar__scalar(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  // in is (rows, cols); mean, var are (cols). Columns are independent: pieces
  // of them run in parallel, each column summed over the rows in order.
  const float inv = 1.0f / static_cast<float>(rows);
  const size_t g = grain(cols, 2 * rows, 4);
  parallel_for(pieces(cols, g), [&](size_t t, size_t) {
    const auto [j0, j1] = piece(t, cols, g);
    for (size_t j = j0; j < j1; ++j) mean[j] = 0.0f;
    for (size_t i = 0; i < rows; ++i)
      for (size_t j = j0; j < j1; ++j) mean[j] += in[i * cols + j];
    for (size_t j = j0; j < j1; ++j) {
      mean[j] *= inv;
      var[j] = 0.0f;
    }
    for (size_t i = 0; i < rows; ++i)
      for (size_t j = j0; j < j1; ++j) {
        const float d = in[i * cols + j] - mean[j];
        var[j] += d * d;
      }
    for (size_t j = j0; j < j1; ++j) var[j] *= inv;
  });
}

void f32_chanmeanvar__scalar(float* mean, float* var, const float* in, size_t B, size_t C,
                             size_t S) {
  // in is (B, C, S); mean, var are (C); channels in parallel pieces
  const double inv = 1.0 / static_cast<double>(B * S);
  const size_t g = grain(C, 2 * B * S);
  parallel_for(pieces(C, g), [&](size_t t, size_t) {
  const auto [c0, c1] = piece(t, C, g);
  for (size_t c = c0; c < c1; ++c) {
    double total = 0;
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + (b * C + c) * S;
      float s = 0.0f;
      for (size_t i = 0; i < S; ++i) s += x[i];
      total += s;
    }
    const float mu = static_cast<float>(total * inv);
    double squares = 0;
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + (b * C + c) * S;
      float q = 0.0f;
      for (size_t i = 0; i < S; ++i) {
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

void f32_chandsums__scalar(double* sum_dy, double* sum_dy_xc, const float* dout, const float* in,
                           const float* mean, size_t B, size_t C, size_t S, size_t stride) {
  // dout, in are B rows (stride apart) of (C, S); sum_dy, sum_dy_xc, mean are (C)
  for (size_t c = 0; c < C; ++c) {
    double total = 0, total_xc = 0;
    const float mu = mean[c];
    for (size_t b = 0; b < B; ++b) {
      const float* dy = dout + b * stride + c * S;
      const float* x = in + b * stride + c * S;
      float s = 0.0f, sx = 0.0f;
      for (size_t i = 0; i < S; ++i) {
        s += dy[i];
        sx += dy[i] * (x[i] - mu);
      }
      total += s;
      total_xc += sx;
    }
    sum_dy[c] = total;
    sum_dy_xc[c] = total_xc;
  }
}

void f32_pack_x8(float* packed, const float* b, size_t k, size_t n) {
  // b is (k, n); packed is ceil(n / 8) panels of (k, 8), pieces of panels in parallel:
  // multiples of 8 panels, like the GEMM's column groups. A float moved counts as 4
  // operations (a copy is memory-bound), so a batch's 64 rows make pieces of 128 columns.
  const size_t g = grain(n, 4 * k, 8 * kPanel);
  parallel_for(pieces(n, g), [&](size_t t, size_t) {
    const auto [c0, c1] = piece(t, n, g);
    float* out = packed + c0 * k;
    for (size_t j0 = c0; j0 < c1; j0 += kPanel) {
      const size_t nr = std::min(kPanel, n - j0);
      if (nr == kPanel) {
        // A whole panel: rows of 8 floats, a copy of fixed size (two vector
        // moves). The loop below costs a call per row (its zero fill becomes
        // memset, of 0 bytes here) and a vector loop's checks: 2-4x slower.
        const float* src = b + j0;
#if defined(__clang__)
#pragma clang loop unroll(disable)
#endif
        for (size_t p = 0; p < k; ++p, src += n, out += kPanel)
          std::memcpy(out, src, kPanel * sizeof(float));
        continue;
      }
      for (size_t p = 0; p < k; ++p) {
        const float* src = b + p * n + j0;
        size_t jj = 0;
        for (; jj < nr; ++jj) out[jj] = src[jj];
        for (; jj < kPanel; ++jj) out[jj] = 0.0f;
        out += kPanel;
      }
    }
  });
}

void f32_pack_t_x8__scalar(float* packed, const float* bt, size_t k, size_t n) {
  // bt is (n, k); packed is ceil(n / 8) panels of (k, 8). Each panel reads 8
  // rows of bt side by side and writes its output front to back.
  for (size_t j0 = 0; j0 < n; j0 += kPanel) {
    const size_t nr = std::min(kPanel, n - j0);
    const float* rows = bt + j0 * k;
    for (size_t p = 0; p < k; ++p) {
      size_t jj = 0;
      for (; jj < nr; ++jj) packed[jj] = rows[jj * k + p];
      for (; jj < kPanel; ++jj) packed[jj] = 0.0f;
      packed += kPanel;
    }
  }
}

namespace {

// c (m, n) from a (m, k) and the packed b, rows in parallel pieces: each sum
// starts at 0 and goes to store(i, j, sum).
template <class Store>
void packed_gemm(const float* a, const float* packed, size_t m, size_t n, size_t k, Store store) {
  const size_t g = grain(m, n * k);
  parallel_for(pieces(m, g), [&](size_t t, size_t) {
  const auto [r0, r1] = piece(t, m, g);
  for (size_t i = r0; i < r1; ++i) {
    const float* ai = a + i * k;
    for (size_t j0 = 0; j0 < n; j0 += kPanel) {
      const float* panel = packed + j0 * k;
      float acc[kPanel] = {0};
      for (size_t p = 0; p < k; ++p)
        for (size_t jj = 0; jj < kPanel; ++jj) acc[jj] += ai[p] * panel[p * kPanel + jj];
      const size_t nr = std::min(kPanel, n - j0);
      for (size_t jj = 0; jj < nr; ++jj) store(i, j0 + jj, acc[jj]);
    }
  }
  });
}

}  // namespace

void f32_gemm_packed__scalar(float* c, const float* a, const float* packed, size_t m, size_t n,
                             size_t k) {
  // c is (m, n); a is (m, k); packed holds b (k, n). Rows in parallel pieces.
  packed_gemm(a, packed, m, n, k, [&](size_t i, size_t j, float sum) { c[i * n + j] += sum; });
}

void f32_gemm_packed_epilogue__scalar(float* c, const float* a, const float* packed, size_t m,
                                      size_t n, size_t k, const ConvEpilogue& ep) {
  packed_gemm(a, packed, m, n, k, [&](size_t i, size_t j, float sum) { c[i * n + j] = ep(sum, j); });
}

void f32_gemm_tn_packed__scalar(float* c, const float* a, const float* packed, size_t m, size_t n,
                                size_t k) {
  // c is (m, n); a is (k, m); packed holds b (k, n). Rows in parallel pieces.
  const size_t g = grain(m, n * k);
  parallel_for(pieces(m, g), [&](size_t t, size_t) {
  const auto [r0, r1] = piece(t, m, g);
  for (size_t i = r0; i < r1; ++i) {
    for (size_t j0 = 0; j0 < n; j0 += kPanel) {
      const float* panel = packed + j0 * k;
      float acc[kPanel] = {0};
      for (size_t p = 0; p < k; ++p)
        for (size_t jj = 0; jj < kPanel; ++jj) acc[jj] += a[p * m + i] * panel[p * kPanel + jj];
      const size_t nr = std::min(kPanel, n - j0);
      for (size_t jj = 0; jj < nr; ++jj) c[i * n + j0 + jj] += acc[jj];
    }
  }
  });
}

void f32_pack_rows_x4(float* packed, const float* w, size_t F, size_t K) {
  // w is (F, K); packed is ceil(F / 4) blocks of (K, 4)
  for (size_t i0 = 0; i0 < F; i0 += 4)
    for (size_t p = 0; p < K; ++p)
      for (size_t r = 0; r < 4; ++r) *packed++ = i0 + r < F ? w[(i0 + r) * K + p] : 0.0f;
}

void f32_conv_direct__scalar(float* out, const float* x, const float* wp, const ConvEpilogue& ep,
                             const PaddedConv& s) {
  // out is (F, OH, OW); x is (C, KW, HP, WP); wp is (F, K) packed in blocks of 4 rows
  const size_t K = s.C * s.KH * s.KW;
  for (size_t i = 0; i < s.F; ++i) {
    const float* wi = wp + i / 4 * 4 * K + i % 4;  // w[i][p] is wi[4 * p]
    for (size_t oy = 0; oy < s.OH; ++oy)
      for (size_t ox = 0; ox < s.OW; ++ox) {
        float acc = 0.0f;
        size_t p = 0;
        for (size_t c = 0; c < s.C; ++c)
          for (size_t ky = 0; ky < s.KH; ++ky)
            for (size_t kx = 0; kx < s.KW; ++kx, ++p)
              acc += wi[4 * p] * x[((c * s.KW + kx) * s.HP + oy * s.SH + ky) * s.WP + ox];
        *out++ = ep(acc, i);
      }
  }
}

void f32_maxpool2x2__scalar(float* out, const float* in, size_t planes, size_t H, size_t W,
                            size_t OH, size_t OW) {
  // in is (planes, H, W); out is (planes, OH, OW)
  for (size_t plane = 0; plane < planes; ++plane)
    for (size_t oy = 0; oy < OH; ++oy) {
      const float* r0 = in + (plane * H + 2 * oy) * W;
      const float* r1 = r0 + W;
      for (size_t ox = 0; ox < OW; ++ox) {
        float best = r0[2 * ox];
        if (r0[2 * ox + 1] > best) best = r0[2 * ox + 1];
        if (r1[2 * ox] > best) best = r1[2 * ox];
        if (r1[2 * ox + 1] > best) best = r1[2 * ox + 1];
        *out++ = best;
      }
    }
}

bool f32_adam__scalar(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2,
                      float c1, float c2, float step_size, float inv_sqrt_bc2, float eps, float wd,
                      bool write) {
  // p, m, v, g are (n). x * 0 is 0 for finite x and NaN otherwise, so one sum
  // tells whether every new value is finite.
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * p[i];
    const float nm = b1 * m[i] + c1 * d;
    const float nv = b2 * v[i] + c2 * d * d;
    const float np = p[i] - step_size * nm / (std::sqrt(nv) * inv_sqrt_bc2 + eps);
    acc += (np + nm + nv) * 0.0f;
    if (write) {
      p[i] = np;
      m[i] = nm;
      v[i] = nv;
    }
  }
  return acc == 0.0f;
}

bool f32_all_finite__scalar(const float* x, size_t n) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) acc += x[i] * 0.0f;
  return acc == 0.0f;
}

uint32_t f32_abs_peak__scalar(const float* x, size_t n) {
  uint32_t peak = 0;
  // Not vectorized: the wasm SIMD variant calls this for n < 4 only.
#if defined(__clang__)
#pragma clang loop vectorize(disable) unroll(disable)
#endif
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, sizeof u);
    peak = std::max(peak, u & 0x7fffffffu);
  }
  return peak;
}

bool f32_sgd__scalar(float* p, float* buf, const float* g, size_t n, float lr, float mu, float wd,
             bool nesterov, bool write) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    float d = g[i] + wd * p[i];
    float b = buf[i];
    if (mu != 0.0f) {
      b = mu * b + d;
      d = nesterov ? d + mu * b : b;
    }
    const float np = p[i] - lr * d;
    acc += (np + b) * 0.0f;  // 0 while everything is finite, NaN otherwise
    if (write) {
      p[i] = np;
      buf[i] = b;
    }
  }
  return acc == 0.0f;
}

void f32_winograd23_weights(float* u, const float* w, size_t F, size_t C) {
  // w is (F, C, 3, 3); u is (16, FP / 4, C, 4). G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
  const size_t FP = (F + 3) / 4 * 4;
  for (size_t f = 0; f < FP; ++f)
    for (size_t c = 0; c < C; ++c) {
      double t[16] = {};
      if (f < F) {
        const float* g = w + (f * C + c) * 9;
        double gg[4][3];  // G g
        for (int j = 0; j < 3; ++j) {
          const double a = g[j], b = g[3 + j], d = g[6 + j];
          gg[0][j] = a;
          gg[1][j] = 0.5 * (a + b + d);
          gg[2][j] = 0.5 * (a - b + d);
          gg[3][j] = d;
        }
        for (int i = 0; i < 4; ++i) {  // (G g) G^T
          const double a = gg[i][0], b = gg[i][1], d = gg[i][2];
          t[i * 4 + 0] = a;
          t[i * 4 + 1] = 0.5 * (a + b + d);
          t[i * 4 + 2] = 0.5 * (a - b + d);
          t[i * 4 + 3] = d;
        }
      }
      for (size_t xi = 0; xi < 16; ++xi)
        u[((xi * (FP / 4) + f / 4) * C + c) * 4 + f % 4] = static_cast<float>(t[xi]);
    }
}

namespace {

// t (16) = B^T d B for the 4x4 block d, rows WP floats apart.
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: rows of the block first.
void winograd23_input_tile(float t[16], const float* d, size_t WP) {
  float e[4][4];
  for (int i = 0; i < 4; ++i, d += WP) {
    e[i][0] = d[0] - d[2];
    e[i][1] = d[1] + d[2];
    e[i][2] = d[2] - d[1];
    e[i][3] = d[1] - d[3];
  }
  for (int j = 0; j < 4; ++j) {
    t[j] = e[0][j] - e[2][j];
    t[4 + j] = e[1][j] + e[2][j];
    t[8 + j] = e[2][j] - e[1][j];
    t[12 + j] = e[1][j] - e[3][j];
  }
}

}  // namespace

void f32_conv3x3_winograd23__scalar(float* out, const float* x, const float* u, float* v,
                                    const ConvEpilogue& ep, const Winograd23Conv& s) {
  // x is (C, HP, WP); u is (16, FP / 4, C, 4); v is (16, C, T)
  const size_t T = s.tiles(), TWP = s.TWP(), HP = s.HP(), WP = s.WP();
  const size_t FB = (s.F + 3) / 4;
  for (size_t c = 0; c < s.C; ++c)
    for (size_t ty = 0; ty < s.TH; ++ty)
      for (size_t tx = 0; tx < TWP; ++tx) {
        float t[16];
        winograd23_input_tile(t, x + (c * HP + 2 * ty) * WP + 2 * tx, WP);
        for (size_t xi = 0; xi < 16; ++xi) v[(xi * s.C + c) * T + ty * TWP + tx] = t[xi];
      }
  const size_t PH = s.OH / 2, PW = s.OW / 2;
  for (size_t f = 0; f < s.F; ++f)
    for (size_t ty = 0; ty < s.TH; ++ty)
      for (size_t tx = 0; tx < s.TW; ++tx) {
        float m[16];
        for (size_t xi = 0; xi < 16; ++xi) {
          const float* uf = u + (xi * FB + f / 4) * s.C * 4 + f % 4;
          const float* vt = v + xi * s.C * T + ty * TWP + tx;
          float acc = 0.0f;
          for (size_t c = 0; c < s.C; ++c) acc += uf[4 * c] * vt[c * T];
          m[xi] = acc;
        }
        // A^T m A, A^T = [1 1 1 0; 0 1 -1 -1]: down the columns first.
        float r0[4], r1[4];
        for (int j = 0; j < 4; ++j) {
          r0[j] = m[j] + m[4 + j] + m[8 + j];
          r1[j] = m[4 + j] - m[8 + j] - m[12 + j];
        }
        float o[4] = {r0[0] + r0[1] + r0[2], r0[1] - r0[2] - r0[3], r1[0] + r1[1] + r1[2],
                      r1[1] - r1[2] - r1[3]};
        for (float& val : o) val = ep(val, f);
        if (s.pool) {
          if (ty >= PH || tx >= PW) continue;
          float best = o[0];
          for (int k = 1; k < 4; ++k)
            if (o[k] > best) best = o[k];
          out[(f * PH + ty) * PW + tx] = best;
          continue;
        }
        for (size_t k = 0; k < 4; ++k) {
          const size_t oy = 2 * ty + k / 2, ox = 2 * tx + k % 2;
          if (oy < s.OH && ox < s.OW) out[(f * s.OH + oy) * s.OW + ox] = o[k];
        }
      }
}


}  // namespace bnwasm
