// Vectorised float32 micro-kernels of the CPU gather matmul. This file is
// included by gather_matmul_cpu_avx512.cc and gather_matmul_cpu_avx2.cc inside
// an architecture namespace, after they define:
//   V, VW (floats per vector), Zero(), Set1(f), Load(p), LoadPartial(p, n),
//   Store(p, v), StorePartial(p, v, n), Fma(a, b, c) = a * b + c, HSum(v),
//   NN_MR, NN_NV (row x vector tile of y = x @ w), NT_XR, NT_WR (tile of
//   y = x @ w^T).
// No standard-library templates are instantiated here (each architecture's
// object must not donate code to another through the linker).

// y[0:rows, 0:NN_NV*VW] (+)= x[0:rows, 0:depth] @ w[0:depth, 0:NN_NV*VW].
template <int MR>
static inline void MicroNN(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                           int64_t ldy, int64_t depth, int64_t valid_cols) {
  V acc[MR][NN_NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NN_NV; ++j) acc[r][j] = Zero();
  for (int64_t k = 0; k < depth; ++k) {
    const float* wk = w + k * ldw;
    if (k + 16 < depth) {
#pragma GCC unroll 4
      for (int j = 0; j < NN_NV; ++j) __builtin_prefetch(wk + 16 * ldw + j * VW, 0, 3);
    }
    V wv[NN_NV];
#pragma GCC unroll 4
    for (int j = 0; j < NN_NV; ++j) wv[j] = Load(wk + j * VW);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const V xs = Set1(x[r * ldx + k]);
#pragma GCC unroll 4
      for (int j = 0; j < NN_NV; ++j) acc[r][j] = Fma(xs, wv[j], acc[r][j]);
    }
  }
  if (valid_cols == NN_NV * VW) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < NN_NV; ++j) Store(y + r * ldy + j * VW, acc[r][j]);
  } else {
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NN_NV; ++j) {
        const int64_t left = valid_cols - j * VW;
        if (left >= VW) Store(y + r * ldy + j * VW, acc[r][j]);
        else if (left > 0) StorePartial(y + r * ldy + j * VW, acc[r][j], static_cast<int>(left));
      }
  }
}

static inline void DispatchNN(int rows, const float* x, int64_t ldx, const float* w, int64_t ldw,
                              float* y, int64_t ldy, int64_t depth, int64_t valid_cols) {
  switch (rows) {
#define NAS_TF_CASE(R) \
  case R: MicroNN<R>(x, ldx, w, ldw, y, ldy, depth, valid_cols); break;
    NAS_TF_CASE(1) NAS_TF_CASE(2) NAS_TF_CASE(3) NAS_TF_CASE(4)
    NAS_TF_CASE(5) NAS_TF_CASE(6) NAS_TF_CASE(7) NAS_TF_CASE(8)
#undef NAS_TF_CASE
    default: break;
  }
}

// Columns [col_begin, col_end) of y[rows, :] = x[rows, depth] @ w[depth, ldw].
// col_end - col_begin <= NN_NV * VW. pack: depth * NN_NV * VW floats of scratch
// for a partial tile (only used when the tile is partial).
static void TileNN(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                   int64_t ldy, int64_t rows, int64_t depth, int64_t col_begin, int64_t col_end,
                   float* pack) {
  const int64_t tile = NN_NV * VW;
  const int64_t cols = col_end - col_begin;
  const float* wt = w + col_begin;
  int64_t ld = ldw;
  if (cols < tile) {
    // Partial tile: copy the few columns into a zero-padded panel once.
    for (int64_t k = 0; k < depth; ++k) {
      float* dst = pack + k * tile;
      const float* src = wt + k * ldw;
      int64_t c = 0;
      for (; c < cols; ++c) dst[c] = src[c];
      for (; c < tile; ++c) dst[c] = 0.0f;
    }
    wt = pack;
    ld = tile;
  }
  for (int64_t r = 0; r < rows; r += NN_MR) {
    const int rr = static_cast<int>(rows - r < NN_MR ? rows - r : NN_MR);
    DispatchNN(rr, x + r * ldx, ldx, wt, ld, y + r * ldy + col_begin, ldy, depth, cols);
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
