// Vectorised float32 micro-kernels of the CPU gather matmul. This file is
// included by gather_matmul_cpu_avx512.cc and gather_matmul_cpu_avx2.cc inside
// an architecture namespace, after they define:
//   V, VW (floats per vector), Zero(), Set1(f), Load(p), LoadPartial(p, n),
//   Store(p, v), StorePartial(p, v, n), Fma(a, b, c) = a * b + c, HSum(v),
//   NN_MR, NN_NV (row x vector tile of y = x @ w; the macro NN_NV_MAX equals
//   NN_NV), NT_XR, NT_WR (tile of y = x @ w^T).
// No standard-library templates are instantiated here (each architecture's
// object must not donate code to another through the linker).

// y[0:rows, 0:valid] = x[0:rows, 0:depth] @ w[0:depth, 0:valid] with NV vectors
// per row; PARTIAL: the last vector holds fewer than VW valid columns (masked
// loads and stores, so no column outside [0, valid) is read or written).
template <int MR, int NV, bool PARTIAL>
static inline void MicroNN(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                           int64_t ldy, int64_t depth, int valid) {
  const int tail = valid - (NV - 1) * VW;  // valid columns of the last vector
  V acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = Zero();
  for (int64_t k = 0; k < depth; ++k) {
    const float* wk = w + k * ldw;
    if (k + 16 < depth) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) __builtin_prefetch(wk + 16 * ldw + j * VW, 0, 3);
    }
    V wv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) wv[j] = (PARTIAL && j == NV - 1) ? LoadPartial(wk + j * VW, tail) : Load(wk + j * VW);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const V xs = Set1(x[r * ldx + k]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = Fma(xs, wv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      if (PARTIAL && j == NV - 1) StorePartial(y + r * ldy + j * VW, acc[r][j], tail);
      else Store(y + r * ldy + j * VW, acc[r][j]);
    }
}

template <int NV, bool PARTIAL>
static inline void DispatchRows(int rows, const float* x, int64_t ldx, const float* w, int64_t ldw,
                                float* y, int64_t ldy, int64_t depth, int valid) {
  switch (rows) {
#define NAS_TF_CASE(R) \
  case R: MicroNN<(R <= NN_MR ? R : 1), NV, PARTIAL>(x, ldx, w, ldw, y, ldy, depth, valid); break;
    NAS_TF_CASE(1) NAS_TF_CASE(2) NAS_TF_CASE(3) NAS_TF_CASE(4)
    NAS_TF_CASE(5) NAS_TF_CASE(6) NAS_TF_CASE(7) NAS_TF_CASE(8)
#undef NAS_TF_CASE
    default: break;
  }
}

static inline void DispatchNN(int rows, const float* x, int64_t ldx, const float* w, int64_t ldw,
                              float* y, int64_t ldy, int64_t depth, int valid) {
  const int nv = (valid + VW - 1) / VW;
  const bool partial = valid % VW != 0;
#define NAS_TF_NV(N)                                                                        \
  if (nv == N) {                                                                            \
    if (partial) DispatchRows<N, true>(rows, x, ldx, w, ldw, y, ldy, depth, valid);         \
    else DispatchRows<N, false>(rows, x, ldx, w, ldw, y, ldy, depth, valid);                \
    return;                                                                                 \
  }
  NAS_TF_NV(1)
#if NN_NV_MAX >= 2
  NAS_TF_NV(2)
#endif
#if NN_NV_MAX >= 3
  NAS_TF_NV(3)
#endif
#undef NAS_TF_NV
}

// Columns [col_begin, col_end) of y[rows, :] = x[rows, depth] @ w[depth, ldw];
// col_end - col_begin <= NN_NV * VW. Reads w in place (no packing).
static void TileNN(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                   int64_t ldy, int64_t rows, int64_t depth, int64_t col_begin, int64_t col_end,
                   float* /*unused scratch*/) {
  const int valid = static_cast<int>(col_end - col_begin);
  for (int64_t r = 0; r < rows; r += NN_MR) {
    const int rr = static_cast<int>(rows - r < NN_MR ? rows - r : NN_MR);
    DispatchNN(rr, x + r * ldx, ldx, w + col_begin, ldw, y + r * ldy + col_begin, ldy, depth, valid);
  }
}

// y[r, n] = dot(x[r, 0:depth], w[n, 0:depth]) for XR rows of x and WR rows of w.
template <int XR, int WR>
static inline void MicroNT(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                           int64_t ldy, int64_t depth) {
  V acc[XR][WR];
#pragma GCC unroll 4
  for (int a = 0; a < XR; ++a)
#pragma GCC unroll 4
    for (int b = 0; b < WR; ++b) acc[a][b] = Zero();
  int64_t k = 0;
  for (; k + VW <= depth; k += VW) {
    V wv[WR];
#pragma GCC unroll 4
    for (int b = 0; b < WR; ++b) wv[b] = Load(w + b * ldw + k);
#pragma GCC unroll 4
    for (int a = 0; a < XR; ++a) {
      const V xv = Load(x + a * ldx + k);
#pragma GCC unroll 4
      for (int b = 0; b < WR; ++b) acc[a][b] = Fma(xv, wv[b], acc[a][b]);
    }
  }
  if (k < depth) {
    const int left = static_cast<int>(depth - k);
    V wv[WR];
    for (int b = 0; b < WR; ++b) wv[b] = LoadPartial(w + b * ldw + k, left);
    for (int a = 0; a < XR; ++a) {
      const V xv = LoadPartial(x + a * ldx + k, left);
      for (int b = 0; b < WR; ++b) acc[a][b] = Fma(xv, wv[b], acc[a][b]);
    }
  }
#pragma GCC unroll 4
  for (int a = 0; a < XR; ++a)
#pragma GCC unroll 4
    for (int b = 0; b < WR; ++b) y[a * ldy + b] = HSum(acc[a][b]);
}

static inline void DispatchNT(int xr, int wr, const float* x, int64_t ldx, const float* w,
                              int64_t ldw, float* y, int64_t ldy, int64_t depth) {
#define NAS_TF_CASE(A, B) \
  if (xr == A && wr == B) { MicroNT<A, B>(x, ldx, w, ldw, y, ldy, depth); return; }
  NAS_TF_CASE(1, 1) NAS_TF_CASE(1, 2) NAS_TF_CASE(1, 3) NAS_TF_CASE(1, 4)
  NAS_TF_CASE(2, 1) NAS_TF_CASE(2, 2) NAS_TF_CASE(2, 3) NAS_TF_CASE(2, 4)
  NAS_TF_CASE(3, 1) NAS_TF_CASE(3, 2) NAS_TF_CASE(3, 3) NAS_TF_CASE(3, 4)
  NAS_TF_CASE(4, 1) NAS_TF_CASE(4, 2) NAS_TF_CASE(4, 3) NAS_TF_CASE(4, 4)
#undef NAS_TF_CASE
}

// Rows [n_begin, n_end) of w, i.e. columns [n_begin, n_end) of y[rows, :].
static void TileNT(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                   int64_t ldy, int64_t rows, int64_t depth, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; n += NT_WR) {
    const int wr = static_cast<int>(n_end - n < NT_WR ? n_end - n : NT_WR);
    for (int64_t r = 0; r < rows; r += NT_XR) {
      const int xr = static_cast<int>(rows - r < NT_XR ? rows - r : NT_XR);
      DispatchNT(xr, wr, x + r * ldx, ldx, w + n * ldw, ldw, y + r * ldy + n, ldy, depth);
    }
  }
}
