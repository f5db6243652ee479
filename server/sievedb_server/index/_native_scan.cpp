// sievedb_server._native_scan: scans of label-indexed arrays at a subset of labels, in place:
// exact top-k of queries among rows of the vector array (`topk_among`), the labels whose
// attribute value lies in a range (`column_among`), the point ids of the hits (`numeric_ids`),
// and the query checks (`checked_queries`).
//
// The exact strategy scores the allowed rows of the collection's label-indexed vector array.
// With numpy that is a gather (`np.take` copies every allowed row) followed by a mat-vec and a
// partition; for a few hundred rows the calls and the copy cost more than the arithmetic.
// `topk_among` reads each allowed row where it lies, scores it and keeps the best k, with the
// GIL released: one call per query batch, no intermediate arrays.
//
// Scores follow sievedb's exact path (index/exact.py): a dot product for cosine (vectors and
// queries are stored normalised) and inner product, higher is closer; the squared euclidean
// distance for L2, lower is closer. Ties are broken by the smaller label, so answers are
// deterministic. The dot product keeps 16 independent partial sums, which the compiler turns
// into SIMD lanes without reassociating a single sum; the summation order therefore differs
// from BLAS's, by float rounding only.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

constexpr std::size_t kLanes = 16;
constexpr std::size_t kAhead = 2;  // rows prefetched ahead of the one being scored

// x86-64: one build runs AVX2/FMA code where the CPU has it and SSE2 elsewhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIEVEDB_SIMD_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define SIEVEDB_SIMD_CLONES
#endif

// The allowed rows are scattered over the array; without prefetching, each row's first cache
// misses are waited for one row at a time (a gather with memcpy overlaps them better).
inline void prefetch_row(const float* row, std::size_t d) {
    const char* p = reinterpret_cast<const char*>(row);
    for (std::size_t off = 0; off < d * sizeof(float); off += 64) __builtin_prefetch(p + off);
}

SIEVEDB_SIMD_CLONES float dot(const float* a, const float* b, std::size_t d) {
    float acc[kLanes] = {};
    std::size_t j = 0;
    for (; j + kLanes <= d; j += kLanes) {
        for (std::size_t l = 0; l < kLanes; ++l) acc[l] += a[j + l] * b[j + l];
    }
    float s = 0.0f;
    for (; j < d; ++j) s += a[j] * b[j];
    for (std::size_t l = 0; l < kLanes; ++l) s += acc[l];
    return s;
}

SIEVEDB_SIMD_CLONES float squared_l2(const float* a, const float* b, std::size_t d) {
    float acc[kLanes] = {};
    std::size_t j = 0;
    for (; j + kLanes <= d; j += kLanes) {
        for (std::size_t l = 0; l < kLanes; ++l) {
            const float t = a[j + l] - b[j + l];
            acc[l] += t * t;
        }
    }
    float s = 0.0f;
    for (; j < d; ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
    for (std::size_t l = 0; l < kLanes; ++l) s += acc[l];
    return s;
}

// (key, label): lower key is closer; equal keys, the smaller label first.
using Scored = std::pair<float, std::uint32_t>;

template <typename T>
void require(const py::array& a, const char* what, int ndim, const char* type) {
    if (!a.dtype().is(py::dtype::of<T>()) || a.ndim() != ndim ||
        !(a.flags() & py::array::c_style)) {
        throw std::invalid_argument(std::string(what) + " must be a C-contiguous " +
                                    std::to_string(ndim) + "-D " + type + " array");
    }
}

// Exact top-k of each row of `queries` (nq, d) among `labels` (rows of `data`, (rows, d)).
// Returns (labels int64 (nq, m), scores float32 (nq, m)), m = min(k, len(labels)), best first.
py::tuple topk_among(const py::array& data, const py::array& labels, const py::array& queries,
                     std::size_t k, bool l2) {
    require<float>(data, "data", 2, "float32");
    require<std::uint32_t>(labels, "labels", 1, "uint32");
    require<float>(queries, "queries", 2, "float32");
    const std::size_t rows = static_cast<std::size_t>(data.shape(0));
    const std::size_t d = static_cast<std::size_t>(data.shape(1));
    const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
    const std::size_t n = static_cast<std::size_t>(labels.shape(0));
    if (static_cast<std::size_t>(queries.shape(1)) != d) {
        throw std::invalid_argument("queries and data differ in dimension");
    }
    const auto* base = static_cast<const float*>(data.data());
    const auto* lab = static_cast<const std::uint32_t*>(labels.data());
    const auto* qs = static_cast<const float*>(queries.data());
    for (std::size_t i = 0; i < n; ++i) {
        if (lab[i] >= rows) throw std::out_of_range("label beyond the vector array");
    }
    const std::size_t m = std::min(k, n);
    py::array_t<std::int64_t> out_labels({nq, m});
    py::array_t<float> out_scores({nq, m});
    std::int64_t* ol = out_labels.mutable_data();
    float* os = out_scores.mutable_data();
    {
        py::gil_scoped_release unlocked;
        std::vector<Scored> scored(n);
        for (std::size_t qi = 0; qi < nq; ++qi) {
            const float* q = qs + qi * d;
            for (std::size_t i = 0; i < std::min(kAhead, n); ++i) {
                prefetch_row(base + static_cast<std::size_t>(lab[i]) * d, d);
            }
            for (std::size_t i = 0; i < n; ++i) {
                if (i + kAhead < n) {
                    prefetch_row(base + static_cast<std::size_t>(lab[i + kAhead]) * d, d);
                }
                const float* row = base + static_cast<std::size_t>(lab[i]) * d;
                scored[i] = {l2 ? squared_l2(row, q, d) : -dot(row, q, d), lab[i]};
            }
            if (m < n) {
                std::nth_element(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(m),
                                 scored.end());
            }
            std::sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(m));
            for (std::size_t j = 0; j < m; ++j) {
                ol[qi * m + j] = scored[j].second;
                os[qi * m + j] = l2 ? scored[j].first : -scored[j].first;
            }
        }
    }
    return py::make_tuple(out_labels, out_scores);
}

// The same top-k as `topk_among`, reading a row's 8-bit codes first (scalar quantisation,
// SQ8: a quarter of the float32 row's bytes). Row x is stored as scale·c (int8 c, per-row
// scale) with an error bound err ≥ ‖x − scale·c‖ plus float slack (index/vectors.py). For
// each allowed row the codes give an approximate score and an interval that surely holds
// the float32 score `topk_among` computes: a dot product moves by at most ‖q‖·err (Cauchy–
// Schwarz), a euclidean distance by at most err (triangle inequality). The query is coded the
// same way, so the scan of the codes is an integer dot product, and the query's own error
// widens each interval by ‖q − q̂‖·‖x̂‖ (‖x̂‖ is stored per row). The k-th best
// interval end bounds the k-th best score; only rows whose interval reaches it are scored
// from their float32 row, with the same kernel, ties and order as `topk_among`. So the answer
// is identical: every row that could be in the top k, or tie with its last, is rescored, and
// the others are provably worse. It reads about a quarter of the memory when few intervals
// reach the bound, which is the usual case (the exact scan is bound by memory, not flops).

// Integer dot product of two code rows: exact in int32 for d < 133,000 (|c| <= 127).
SIEVEDB_SIMD_CLONES std::int32_t dot_codes(const std::int8_t* a, const std::int8_t* b,
                                           std::size_t d) {
    std::int32_t s = 0;
    for (std::size_t j = 0; j < d; ++j) {
        s += static_cast<std::int16_t>(a[j]) * static_cast<std::int16_t>(b[j]);
    }
    return s;
}

inline void prefetch_bytes(const void* p, std::size_t n) {
    const char* b = static_cast<const char*>(p);
    for (std::size_t off = 0; off < n; off += 64) __builtin_prefetch(b + off);
}

// codes: int8 (rows, d); meta: float32 (rows, 3) = (scale, err, ‖x̂‖) per row. Returns the same as
// topk_among(data, labels, queries, k, l2), and the number of rows rescored from float32.
py::tuple topk_among_sq8(const py::array& data, const py::array& codes, const py::array& meta,
                         const py::array& labels, const py::array& queries, std::size_t k,
                         bool l2) {
    require<float>(data, "data", 2, "float32");
    require<std::int8_t>(codes, "codes", 2, "int8");
    require<float>(meta, "meta", 2, "float32");
    require<std::uint32_t>(labels, "labels", 1, "uint32");
    require<float>(queries, "queries", 2, "float32");
    const std::size_t rows = static_cast<std::size_t>(data.shape(0));
    const std::size_t d = static_cast<std::size_t>(data.shape(1));
    const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
    const std::size_t n = static_cast<std::size_t>(labels.shape(0));
    if (static_cast<std::size_t>(queries.shape(1)) != d ||
        static_cast<std::size_t>(codes.shape(1)) != d) {
        throw std::invalid_argument("queries, codes and data differ in dimension");
    }
    if (d > 130000) throw std::invalid_argument("codes support dimensions up to 130,000");
    if (static_cast<std::size_t>(codes.shape(0)) < rows ||
        static_cast<std::size_t>(meta.shape(0)) < rows || meta.shape(1) != 3) {
        throw std::invalid_argument("codes and meta must cover every row of data");
    }
    const auto* base = static_cast<const float*>(data.data());
    const auto* cbase = static_cast<const std::int8_t*>(codes.data());
    const auto* mbase = static_cast<const float*>(meta.data());
    const auto* lab = static_cast<const std::uint32_t*>(labels.data());
    const auto* qs = static_cast<const float*>(queries.data());
    for (std::size_t i = 0; i < n; ++i) {
        if (lab[i] >= rows) throw std::out_of_range("label beyond the vector array");
    }
    const std::size_t m = std::min(k, n);
    py::array_t<std::int64_t> out_labels({nq, m});
    py::array_t<float> out_scores({nq, m});
    std::int64_t* ol = out_labels.mutable_data();
    float* os = out_scores.mutable_data();
    std::size_t rescored = 0;
    // Relative float error of a d-term sum, doubled for margin (the stored err has its own).
    const double rel = 2.0 * static_cast<double>(d + 32) * 0x1p-24;
    constexpr std::size_t kCodesAhead = 8;
    {
        py::gil_scoped_release unlocked;
        std::vector<double> lo(n), hi(n), his(n);
        std::vector<Scored> scored;
        std::vector<std::uint32_t> cand;
        std::vector<std::int8_t> qc(d);
        for (std::size_t qi = 0; qi < nq && m > 0; ++qi) {
            const float* q = qs + qi * d;
            // The query's own codes (per-query scale, nearest integers) and their error rq:
            // q·x̂ = q̂·x̂ + (q − q̂)·x̂, and |(q − q̂)·x̂| <= rq·‖x̂‖. Pass 1 is integer arithmetic.
            double qn = 0.0, qmax = 0.0;
            for (std::size_t j = 0; j < d; ++j) {
                qn += static_cast<double>(q[j]) * q[j];
                qmax = std::max(qmax, std::fabs(static_cast<double>(q[j])));
            }
            qn = std::sqrt(qn);
            const double sq = qmax / 127.0;
            double rq = 0.0;
            for (std::size_t j = 0; j < d; ++j) {
                const double c = sq > 0 ? std::min(127.0, std::max(-127.0, std::nearbyint(q[j] / sq)))
                                        : 0.0;
                qc[j] = static_cast<std::int8_t>(c);
                const double r = q[j] - sq * c;
                rq += r * r;
            }
            rq = std::sqrt(rq) * (1 + rel);
            // Pass 1: an interval [lo, hi] of each row's key (lower is closer) from its codes.
            for (std::size_t i = 0; i < std::min(kCodesAhead, n); ++i) {
                prefetch_bytes(cbase + static_cast<std::size_t>(lab[i]) * d, d);
            }
            for (std::size_t i = 0; i < n; ++i) {
                if (i + kCodesAhead < n) {
                    prefetch_bytes(cbase + static_cast<std::size_t>(lab[i + kCodesAhead]) * d, d);
                }
                const std::size_t r = lab[i];
                const double scale = mbase[3 * r];
                const double err = mbase[3 * r + 1];
                const double cn = mbase[3 * r + 2];  // ‖x̂‖, rounded up
                const double a = scale * sq * dot_codes(cbase + r * d, qc.data(), d);  // q̂·x̂
                const double spread = rq * cn + std::fabs(a) * rel;  // q·x̂ within a ± spread
                if (l2) {
                    // ‖q − x̂‖² = ‖q‖² − 2 q·x̂ + ‖x̂‖², then ‖q − x‖ within ‖q − x̂‖ ± err.
                    const double slack = rel * (qn * qn + cn * cn + 2 * std::fabs(a));
                    const double lo2 = qn * qn - 2 * (a + spread) + cn * cn * (1 - 0x1p-21) - slack;
                    const double hi2 = qn * qn - 2 * (a - spread) + cn * cn + slack;
                    const double near = std::max(0.0, std::sqrt(std::max(0.0, lo2)) - err);
                    const double far = std::sqrt(std::max(0.0, hi2)) + err;
                    lo[i] = near * near * (1 - rel);
                    hi[i] = far * far * (1 + rel);
                } else {
                    const double e = qn * err * (1 + rel) + spread;
                    lo[i] = -a - e;
                    hi[i] = -a + e;
                }
            }
            // The k-th smallest upper end: k rows surely score at least that well.
            std::copy(hi.begin(), hi.end(), his.begin());
            std::nth_element(his.begin(), his.begin() + static_cast<std::ptrdiff_t>(m - 1),
                             his.end());
            const double bound = his[m - 1];
            // Pass 2: rescore, from float32, every row whose interval reaches the bound.
            cand.clear();
            for (std::size_t i = 0; i < n; ++i) {
                if (lo[i] <= bound) cand.push_back(lab[i]);
            }
            scored.resize(cand.size());
            const std::size_t nc = cand.size();
            for (std::size_t i = 0; i < std::min(kAhead, nc); ++i) {
                prefetch_row(base + static_cast<std::size_t>(cand[i]) * d, d);
            }
            for (std::size_t i = 0; i < nc; ++i) {
                if (i + kAhead < nc) {
                    prefetch_row(base + static_cast<std::size_t>(cand[i + kAhead]) * d, d);
                }
                const float* row = base + static_cast<std::size_t>(cand[i]) * d;
                scored[i] = {l2 ? squared_l2(row, q, d) : -dot(row, q, d), cand[i]};
            }
            rescored += scored.size();
            const std::size_t mm = std::min(m, scored.size());  // == m: k rows reach the bound
            if (mm < scored.size()) {
                std::nth_element(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(mm),
                                 scored.end());
            }
            std::sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(mm));
            for (std::size_t j = 0; j < mm; ++j) {
                ol[qi * m + j] = scored[j].second;
                os[qi * m + j] = l2 ? scored[j].first : -scored[j].first;
            }
        }
    }
    return py::make_tuple(out_labels, out_scores, rescored);
}

// Checks query vectors in one pass and, for cosine, normalises them: (out, first bad row).
// A row is bad if it holds NaN or Inf or, when normalising, if its squared norm (summed in
// float64) is not a normal float32: zero, below FLT_MIN or above FLT_MAX. `out` is a float32
// copy, divided by the float64 norm when normalising; -1 means every row is fine.
py::tuple checked_queries(const py::array& queries, bool normalise) {
    require<float>(queries, "queries", 2, "float32");
    const std::size_t n = static_cast<std::size_t>(queries.shape(0));
    const std::size_t d = static_cast<std::size_t>(queries.shape(1));
    const auto* in = static_cast<const float*>(queries.data());
    py::array_t<float> out({n, d});
    float* o = out.mutable_data();
    long first_bad = -1;
    for (std::size_t i = 0; i < n && first_bad < 0; ++i) {
        const float* row = in + i * d;
        double sq = 0.0;
        bool finite = true;
        for (std::size_t j = 0; j < d; ++j) {
            finite &= std::isfinite(row[j]);
            sq += static_cast<double>(row[j]) * row[j];
        }
        if (!finite || (normalise && !(sq >= FLT_MIN && sq <= FLT_MAX))) {
            first_bad = static_cast<long>(i);
            break;
        }
        const double scale = normalise ? 1.0 / std::sqrt(sq) : 1.0;
        for (std::size_t j = 0; j < d; ++j) {
            o[i * d + j] = static_cast<float>(row[j] * scale);
        }
    }
    return py::make_tuple(out, first_bad);
}

// The candidates (sorted uint32 labels) whose value in `column` (float64 by label, NaN = no
// value) lies in the range; labels past the column have no value. One pass, no temporaries.
py::array_t<std::uint32_t> column_among(const py::array& column, const py::array& labels,
                                        double lo, bool lo_incl, double hi, bool hi_incl) {
    require<double>(column, "column", 1, "float64");
    require<std::uint32_t>(labels, "labels", 1, "uint32");
    const std::size_t size = static_cast<std::size_t>(column.shape(0));
    const std::size_t n = static_cast<std::size_t>(labels.shape(0));
    const auto* col = static_cast<const double*>(column.data());
    const auto* lab = static_cast<const std::uint32_t*>(labels.data());
    std::vector<std::uint32_t> kept;
    kept.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (lab[i] >= size) continue;
        const double v = col[lab[i]];  // NaN fails both comparisons
        if ((lo_incl ? v >= lo : v > lo) && (hi_incl ? v <= hi : v < hi)) kept.push_back(lab[i]);
    }
    py::array_t<std::uint32_t> out(static_cast<py::ssize_t>(kept.size()));
    std::copy(kept.begin(), kept.end(), out.mutable_data());
    return out;
}

// The numeric point ids of `labels` (int64) as a Python list, from the label-indexed arrays
// `num` (uint64 ids), `is_num` and `live` (bool); None unless every label is in range, has a
// numeric id and is live (the caller then takes its general path).
py::object numeric_ids(const py::array& labels, const py::array& num, const py::array& is_num,
                       const py::array& live) {
    require<std::int64_t>(labels, "labels", 1, "int64");
    require<std::uint64_t>(num, "num", 1, "uint64");
    require<bool>(is_num, "is_num", 1, "bool");
    require<bool>(live, "live", 1, "bool");
    const std::size_t n = static_cast<std::size_t>(labels.shape(0));
    const std::size_t ids_size = static_cast<std::size_t>(
        std::min(num.shape(0), is_num.shape(0)));
    const std::size_t live_size = static_cast<std::size_t>(live.shape(0));
    const auto* lab = static_cast<const std::int64_t*>(labels.data());
    const auto* ids = static_cast<const std::uint64_t*>(num.data());
    const auto* numeric = static_cast<const bool*>(is_num.data());
    const auto* alive = static_cast<const bool*>(live.data());
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t label = lab[i];
        if (label < 0 || static_cast<std::size_t>(label) >= ids_size ||
            static_cast<std::size_t>(label) >= live_size || !numeric[label] || !alive[label]) {
            return py::none();
        }
    }
    py::list out(n);
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = py::int_(static_cast<unsigned long long>(ids[lab[i]]));
    }
    return std::move(out);
}

}  // namespace

PYBIND11_MODULE(_native_scan, m) {
    m.doc() = "Exact top-k among a subset of a label-indexed vector array (no gather).";
    m.def("topk_among", &topk_among, py::arg("data"), py::arg("labels"), py::arg("queries"),
          py::arg("k"), py::arg("l2"),
          "Best k of `labels` (uint32 rows of the float32 (rows, d) `data`) for each float32 "
          "(nq, d) query: (labels int64 (nq, m), scores float32 (nq, m)), m = min(k, "
          "len(labels)), best first, ties by smaller label. Scores: dot product, or squared "
          "euclidean distance when `l2`.");
    m.def("topk_among_sq8", &topk_among_sq8, py::arg("data"), py::arg("codes"),
          py::arg("meta"), py::arg("labels"), py::arg("queries"), py::arg("k"), py::arg("l2"),
          "`topk_among`'s answer, found by scoring each row's int8 `codes` (float32 `meta` per "
          "row: scale, error bound, norm of the coded row) first and rescoring from `data` only the rows whose bound "
          "reaches the k-th best: (labels, scores, rows rescored).");
    m.def("column_among", &column_among, py::arg("column"), py::arg("labels"), py::arg("lo"),
          py::arg("lo_incl"), py::arg("hi"), py::arg("hi_incl"),
          "The sorted uint32 `labels` whose float64 `column[label]` lies in the range (NaN and "
          "labels past the column: no value, never in range).");
    m.def("numeric_ids", &numeric_ids, py::arg("labels"), py::arg("num"), py::arg("is_num"),
          py::arg("live"),
          "The point ids of int64 `labels` as a list of ints, or None unless every label has a "
          "numeric id (`num`, `is_num`) and is `live`.");
    m.def("checked_queries", &checked_queries, py::arg("queries"), py::arg("normalise"),
          "(float32 copy of `queries`, divided by each row's norm when `normalise`; index of "
          "the first row with NaN/Inf or, when normalising, a squared norm outside float32's "
          "normal range, else -1).");
}
