// Prototype: one SO3krates layer's message pass (forward only) with tabulated radial filters as one
// fused loop over the unordered pairs, for measuring what a fused kernel would gain over the XLA
// program of biomlff.so3lr.network._tabulated_block (issue 13). Not used by the package.
//
// Same math as _tabulated_block: per unordered pair (i, j) with r = |r_ij| (Å), Y_lm(r̂_ij) (24) and
// the cutoff φ: radial filters y(r) from the quintic table (cells × 6 × 256), spherical filters
// S_w = silu(C(ev_j − ev_i)·K1_w + b1_w)·K2_w + b2_w, w1 = y[:128] + S_1, w2 = y[128:] + S_2,
// a_ij[h] = s Σ_d q1_i w1 k1_j (s = φ / avg_num_neighbors), messages to both atoms.
// Build: g++ -O3 -march=native -ffast-math -shared -fPIC mp_forward.cc -o libmp_forward.so
#include <cmath>
#include <cstdint>
#include <cstring>

extern "C" void mp_forward(int64_t n_pairs, const int32_t* pi, const int32_t* pj, const float* r,
                           const float* ylm, const float* phi, const float* q1, const float* k1,
                           const float* v1, const float* q2, const float* k2, const float* ev,
                           const float* table, int64_t cells, float rc, const float* sk1,
                           const float* sb1, const float* sk2, const float* sb2, const float* cg,
                           const float* parity, float inv_avg, float* dx, float* dev) {
  const int F = 128, H = 32, NC = 24;
  const int deg_start[4] = {0, 3, 8, 15}, deg_size[4] = {3, 5, 7, 9};
  for (int64_t p = 0; p < n_pairs; ++p) {
    if (phi[p] == 0.0f) continue;
    const int i = pi[p], j = pj[p];
    const float s = phi[p] * inv_avg;
    float x = r[p] * (float)cells / rc;
    float c = std::floor(x);
    if (c < 0) c = 0;
    if (c > cells - 1) c = (float)(cells - 1);
    const float t = x - c;
    const float* row = table + (int64_t)c * 6 * 2 * F;
    float y[2 * F];
    for (int f = 0; f < 2 * F; ++f) y[f] = row[5 * 2 * F + f];
    for (int a = 4; a >= 0; --a)
      for (int f = 0; f < 2 * F; ++f) y[f] = y[f] * t + row[a * 2 * F + f];
    // spherical filters
    float inv[4];
    const float* evi = ev + (int64_t)i * NC;
    const float* evj = ev + (int64_t)j * NC;
    for (int l = 0; l < 4; ++l) {
      float acc = 0;
      for (int m = 0; m < deg_size[l]; ++m) {
        float d = evj[deg_start[l] + m] - evi[deg_start[l] + m];
        acc += d * d;
      }
      inv[l] = acc * cg[l];
    }
    for (int w = 0; w < 2; ++w) {
      float h[H];
      for (int u = 0; u < H; ++u) {
        float z = sb1[w * H + u];
        for (int l = 0; l < 4; ++l) z += inv[l] * sk1[(w * 4 + l) * H + u];
        h[u] = z / (1.0f + std::exp(-z));
      }
      float* yw = y + w * F;
      for (int f = 0; f < F; ++f) yw[f] += sb2[w * F + f];
      for (int u = 0; u < H; ++u) {
        const float hu = h[u];
        const float* k2row = sk2 + ((int64_t)w * H + u) * F;
        for (int f = 0; f < F; ++f) yw[f] += hu * k2row[f];
      }
    }
    const float* w1 = y;
    const float* w2 = y + F;
    const float *q1i = q1 + (int64_t)i * F, *q1j = q1 + (int64_t)j * F;
    const float *k1i = k1 + (int64_t)i * F, *k1j = k1 + (int64_t)j * F;
    const float *v1i = v1 + (int64_t)i * F, *v1j = v1 + (int64_t)j * F;
    const float *q2i = q2 + (int64_t)i * F, *q2j = q2 + (int64_t)j * F;
    const float *k2i = k2 + (int64_t)i * F, *k2j = k2 + (int64_t)j * F;
    float a_ij[4], a_ji[4], b_ij[4], b_ji[4];
    for (int hh = 0; hh < 4; ++hh) {
      float s1 = 0, s2 = 0, s3 = 0, s4 = 0;
      for (int d = 0; d < 32; ++d) {
        const int f = hh * 32 + d;
        s1 += q1i[f] * w1[f] * k1j[f];
        s2 += q1j[f] * w1[f] * k1i[f];
        s3 += q2i[f] * w2[f] * k2j[f];
        s4 += q2j[f] * w2[f] * k2i[f];
      }
      a_ij[hh] = s1 * s; a_ji[hh] = s2 * s; b_ij[hh] = s3 * s; b_ji[hh] = s4 * s;
    }
    float* dxi = dx + (int64_t)i * F;
    float* dxj = dx + (int64_t)j * F;
    for (int hh = 0; hh < 4; ++hh)
      for (int d = 0; d < 32; ++d) {
        const int f = hh * 32 + d;
        dxi[f] += a_ij[hh] * v1j[f];
        dxj[f] += a_ji[hh] * v1i[f];
      }
    const float* yl = ylm + p * NC;
    float* devi = dev + (int64_t)i * NC;
    float* devj = dev + (int64_t)j * NC;
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < deg_size[l]; ++m) {
        const int cc = deg_start[l] + m;
        devi[cc] += b_ij[l] * yl[cc];
        devj[cc] += b_ji[l] * yl[cc] * parity[cc];
      }
  }
}
