// Double-precision log, exp and cos without lookup tables: fdlibm's algorithms, as musl had them
// before 2018. musl's current log and exp (Arm's optimized routines) carry 6.9 KB of tables and
// its cos the 2.7 KB table of 2/pi that reduces huge arguments; those tables are random-looking
// doubles gzip cannot shrink, about 10 KiB of the gzipped wasm for the three calls bnwasm makes
// in double precision (the Box-Muller draw of init 'normal', the evaluation loss). These are
// within 1 ulp, like musl's (tests/cpp/fdlibm_test.cpp checks them against std::).
//
// Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
// Developed at SunPro, a Sun Microsystems, Inc. business.
// Permission to use, copy, modify, and distribute this software is freely granted, provided
// that this notice is preserved.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace bnwasm {
namespace fdlibm_detail {

inline uint64_t bits(double x) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline double from_bits(uint64_t u) {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// cos and sin of x + y on [-pi/4, pi/4] (y the tail of a reduced argument).
inline double kernel_cos(double x, double y) {
  const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
               C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
               C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  const double z = x * x, w = z * z;
  const double r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
  const double hz = 0.5 * z, v = 1.0 - hz;
  return v + (((1.0 - v) - hz) + (z * r - x * y));
}
inline double kernel_sin(double x, double y) {
  const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
               S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
               S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  const double z = x * x, w = z * z;
  const double r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
  const double v = z * x;
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

}  // namespace fdlibm_detail

// The natural logarithm (fdlibm's e_log.c): x = 2^k (1 + f), log(1 + f) from s = f / (2 + f).
inline double fdlibm_log(double x) {
  using namespace fdlibm_detail;
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
               Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
               Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
               Lg7 = 1.479819860511658591e-01;
  uint64_t u = bits(x);
  uint32_t hx = static_cast<uint32_t>(u >> 32);
  int k = 0;
  if (hx < 0x00100000 || (hx >> 31) != 0) {
    if ((u << 1) == 0) return -1 / (x * x);  // log(+-0) = -inf
    if ((hx >> 31) != 0) return (x - x) / 0.0;  // log(negative) = NaN
    k -= 54;  // subnormal: scale up
    x *= 0x1p54;
    u = bits(x);
    hx = static_cast<uint32_t>(u >> 32);
  } else if (hx >= 0x7ff00000) {
    return x;
  } else if (hx == 0x3ff00000 && (u << 32) == 0) {
    return 0;
  }
  // Reduce x into [sqrt(2)/2, sqrt(2)].
  hx += 0x3ff00000 - 0x3fe6a09e;
  k += static_cast<int>(hx >> 20) - 0x3ff;
  hx = (hx & 0x000fffff) + 0x3fe6a09e;
  x = from_bits(static_cast<uint64_t>(hx) << 32 | (u & 0xffffffff));
  const double f = x - 1.0, hfsq = 0.5 * f * f, s = f / (2.0 + f), z = s * s, w = z * z;
  const double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
  const double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
  const double R = t2 + t1, dk = k;
  return s * (hfsq + R) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

// e^x (fdlibm's e_exp.c): x = k ln2 + r, |r| <= ln2 / 2, e^r by a rational approximation.
inline double fdlibm_exp(double x) {
  using namespace fdlibm_detail;
  const double ln2hi = 6.93147180369123816490e-01, ln2lo = 1.90821492927058770002e-10,
               invln2 = 1.44269504088896338700e+00;
  const double P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03,
               P3 = 6.61375632143793436117e-05, P4 = -1.65339022054652515390e-06,
               P5 = 4.13813679705723846039e-08;
  const uint32_t top = static_cast<uint32_t>(bits(x) >> 32);
  const int sign = static_cast<int>(top >> 31);
  const uint32_t hx = top & 0x7fffffff;
  if (hx >= 0x4086232b) {  // |x| >= 708.39 or NaN
    if (std::isnan(x)) return x;
    if (x > 709.782712893383973096) return x * 0x1p1023;  // overflow: inf
    if (x < -745.13321910194110842) return 0;              // underflow
  }
  double hi, lo;
  int k;
  if (hx > 0x3fd62e42) {  // |x| > ln2 / 2
    k = hx >= 0x3ff0a2b2 ? static_cast<int>(invln2 * x + (sign ? -0.5 : 0.5)) : 1 - sign - sign;
    hi = x - k * ln2hi;  // exact: k * ln2hi has few bits
    lo = k * ln2lo;
    x = hi - lo;
  } else if (hx > 0x3e300000) {  // |x| > 2^-28
    k = 0;
    hi = x;
    lo = 0;
  } else {
    return 1 + x;
  }
  const double xx = x * x;
  const double c = x - xx * (P1 + xx * (P2 + xx * (P3 + xx * (P4 + xx * P5))));
  const double y = 1 + (x * c / (2 - c) - lo + hi);
  return k == 0 ? y : std::scalbn(y, k);
}

// cos(x) for |x| < 2^20 pi/2 (fdlibm's s_cos.c with the medium-size reduction of
// e_rem_pio2.c, three rounds of pi/2 in pieces): the arguments bnwasm passes are in [0, 2 pi).
// Larger ones need the 2/pi table this file exists to leave out, so they give NaN.
inline double fdlibm_cos(double x) {
  using namespace fdlibm_detail;
  const double invpio2 = 6.36619772367581382433e-01, pio2_1 = 1.57079632673412561417e+00,
               pio2_1t = 6.07710050650619224932e-11, pio2_2 = 6.07710050630396597660e-11,
               pio2_2t = 2.02226624879595063154e-21, pio2_3 = 2.02226624871116645580e-21,
               pio2_3t = 8.47842766036889956997e-32;
  const uint32_t ix = static_cast<uint32_t>(bits(x) >> 32) & 0x7fffffff;
  if (ix <= 0x3fe921fb) {  // |x| <= pi/4
    if (ix < 0x3e46a09e) return 1.0;  // |x| < 2^-27 sqrt(2)
    return kernel_cos(x, 0);
  }
  if (ix >= 0x413921fb) return x - x + NAN;  // huge, inf or NaN
  // n = rint(x / (pi/2)); y0 + y1 = x - n pi/2, to 151 bits where cancellation asks for it.
  const double fn = std::nearbyint(x * invpio2);
  const int n = static_cast<int>(fn);
  double r = x - fn * pio2_1;
  double w = fn * pio2_1t;
  double y0 = r - w;
  const int ex = static_cast<int>(ix >> 20);
  if (ex - static_cast<int>(bits(y0) >> 52 & 0x7ff) > 16) {
    double t = r;
    w = fn * pio2_2;
    r = t - w;
    w = fn * pio2_2t - ((t - r) - w);
    y0 = r - w;
    if (ex - static_cast<int>(bits(y0) >> 52 & 0x7ff) > 49) {
      t = r;
      w = fn * pio2_3;
      r = t - w;
      w = fn * pio2_3t - ((t - r) - w);
      y0 = r - w;
    }
  }
  const double y1 = (r - y0) - w;
  switch (n & 3) {
    case 0: return kernel_cos(y0, y1);
    case 1: return -kernel_sin(y0, y1);
    case 2: return -kernel_cos(y0, y1);
    default: return kernel_sin(y0, y1);
  }
}

}  // namespace bnwasm
