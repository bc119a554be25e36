//! `C = s * A B (+ C)` on strided f32 slices, through the `gemm` crate (which picks its own
//! instruction set at run time), with every index checked against the slices first.

/// A read-only matrix: `rows x cols` elements of `data`, element `(i, j)` at
/// `i * rs + j * cs`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride, in elements.
    pub rs: usize,
    /// Column stride, in elements.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows x cols` with row stride `ld`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }
    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `c[i * ldc + j] = scale * sum_k a(i, k) b(k, j)` (plus its old value when `accumulate`), for
/// `i < a.rows`, `j < b.cols`. `threads > 1` splits the product over rayon's pool.
///
/// Panics when the shapes disagree or a stride reaches outside a slice (a bug of the caller, not
/// of its input).
pub fn matmul(
    c: &mut [f32],
    ldc: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    scale: f32,
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: inner dimensions {k} and {}", b.rows);
    assert!(
        a.fits() && b.fits(),
        "matmul: operand strides outside the data"
    );
    assert!(
        m == 0 || n == 0 || (m - 1) * ldc + n <= c.len(),
        "matmul: destination of {} for {m} x {n} with ldc {ldc}",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element the product reads ((m-1, k-1) of A, (k-1,
    // n-1) of B) and writes ((m-1, n-1) of C, row stride ldc) inside its slice; C does not
    // alias A or B (a `&mut` and two `&` borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}
