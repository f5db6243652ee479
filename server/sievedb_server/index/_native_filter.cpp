// sievedb_server._native_filter: a C++ label filter for hnswlib's filtered search.
//
// hnswlib's knn_query(filter=f) converts `f` to std::function<bool(size_t)>. For an arbitrary
// Python callable, pybind11 wraps it so that every candidate the search visits re-acquires
// the GIL and makes a Python call. When `f` is a pybind11-bound *stateless* C++ function of
// exactly the signature bool(size_t), pybind11's std::function caster instead extracts the raw
// function pointer and the search never touches Python (hnswlib releases the GIL around it).
// Across two extension modules that fast path needs shared pybind11 internals: both modules
// built with pybind11 2.x of the same internals version (sievedb's build pins pybind11<3 for
// its own build and for hnswlib's; see constraints-build.txt and the Makefile).
//
// Stateless means the filter cannot carry its allowed set, so the set lives in thread-local
// storage: the Python side installs a bit-per-label array (bit `label & 63` of 64-bit word
// `label >> 6`) for the calling thread, searches, and clears it. hnswlib calls the filter on
// the calling thread as long as the search does not fan out to worker threads (num_threads ==
// 1, or few queries); the Python wrapper (native_filter.py) only uses this filter then.
//
// The bits are built from a pyroaring BitMap's portable serialization (`roaring_bits`): a
// bitset container is one memcpy, so even a dense set costs little to install (the byte per
// label this replaced was marked label by label).
//
// The bit array's memory is owned by a numpy array that the Python side keeps referenced for
// as long as it is installed; this module only borrows the pointer.
//
// Two more filters need no allowed set at all (see column_filter.py): `in_range` reads the
// candidate's value from a label-ordered float64 column (NaN = no value) and tests it against
// installed bounds; `in_codes` reads the code of its value from a single-valued field's int32
// column (-1 = none) and tests it against the bits of the allowed codes. A filter that is one
// range, or one match on such a field, is searched this way, so a wide filter costs nothing
// before the traversal (its bit array would cost tens of microseconds to build). The columns
// are borrowed like the bits, and the caller holds the collection's read lock, so no writer
// changes them during the search.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <Python.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace py = pybind11;

namespace {

thread_local const std::uint64_t* t_bits = nullptr;  // membership bits, one per label
thread_local std::size_t t_nbits = 0;                 // labels >= t_nbits are not allowed
thread_local std::uint64_t t_calls = 0;               // filter calls on this thread
thread_local bool t_gil_seen = false;                 // any call made with the GIL held?

struct RangeFilter {
    const double* column = nullptr;  // value by label, NaN = none
    std::size_t size = 0;            // labels >= size have no value
    double lo = 0, hi = 0;
    bool lo_incl = true, hi_incl = true;
};
thread_local RangeFilter t_range;

struct CodesFilter {
    const std::int32_t* codes = nullptr;  // value code by label, -1 = none
    std::size_t size = 0;                 // labels >= size have no value
    const std::uint64_t* allowed = nullptr;  // bit per code
    std::size_t nbits = 0;
};
thread_local CodesFilter t_codes;

// The filter hnswlib calls per candidate. Its signature must stay exactly bool(size_t) and it
// must stay a plain function (no captures) or pybind11 falls back to the Python-call wrapper.
bool allowed(std::size_t label) {
    ++t_calls;
    // On the fast path hnswlib has released the GIL; if we see it held, pybind11 wrapped us
    // in a Python call (slow path). Cheap: a thread-state comparison.
    if (PyGILState_Check()) t_gil_seen = true;
    return label < t_nbits && ((t_bits[label >> 6] >> (label & 63)) & 1U) != 0;
}

// The range filter hnswlib calls per candidate (same constraints as `allowed`). NaN compares
// false, so a label without a value is never allowed.
bool in_range(std::size_t label) {
    ++t_calls;
    if (PyGILState_Check()) t_gil_seen = true;
    const RangeFilter& r = t_range;
    if (label >= r.size) return false;
    const double v = r.column[label];
    return (r.lo_incl ? v >= r.lo : v > r.lo) && (r.hi_incl ? v <= r.hi : v < r.hi);
}

void set_range(const py::buffer& buf, double lo, bool lo_incl, double hi, bool hi_incl) {
    py::buffer_info info = buf.request();
    if (info.ndim != 1 || info.itemsize != 8 ||
        info.format != py::format_descriptor<double>::format() ||
        (info.size > 1 && info.strides[0] != 8)) {
        throw std::invalid_argument("a range column must be a contiguous 1-D float64 array");
    }
    t_range = RangeFilter{static_cast<const double*>(info.ptr),
                          static_cast<std::size_t>(info.size), lo, hi, lo_incl, hi_incl};
}

void clear_range() { t_range = RangeFilter{}; }

// The code filter hnswlib calls per candidate (same constraints as `allowed`): the label's
// value code (a single-valued field's column) must be one of the allowed codes.
bool in_codes(std::size_t label) {
    ++t_calls;
    if (PyGILState_Check()) t_gil_seen = true;
    const CodesFilter& f = t_codes;
    if (label >= f.size) return false;
    const std::int32_t c = f.codes[label];
    if (c < 0 || static_cast<std::size_t>(c) >= f.nbits) return false;
    return ((f.allowed[static_cast<std::size_t>(c) >> 6] >> (c & 63)) & 1U) != 0;
}

void set_codes(const py::buffer& codes, const py::buffer& allowed) {
    py::buffer_info ci = codes.request(), ai = allowed.request();
    if (ci.ndim != 1 || ci.itemsize != 4 ||
        ci.format != py::format_descriptor<std::int32_t>::format() ||
        (ci.size > 1 && ci.strides[0] != 4)) {
        throw std::invalid_argument("a code column must be a contiguous 1-D int32 array");
    }
    if (ai.ndim != 1 || ai.itemsize != 8 || (ai.size > 1 && ai.strides[0] != 8)) {
        throw std::invalid_argument("allowed codes must be a contiguous 1-D uint64 array");
    }
    t_codes = CodesFilter{static_cast<const std::int32_t*>(ci.ptr),
                          static_cast<std::size_t>(ci.size),
                          static_cast<const std::uint64_t*>(ai.ptr),
                          static_cast<std::size_t>(ai.size) * 64};
}

void clear_codes() { t_codes = CodesFilter{}; }

void set_bits(const py::buffer& buf) {
    py::buffer_info info = buf.request();
    if (info.ndim != 1 || info.itemsize != 8 || (info.size > 1 && info.strides[0] != 8)) {
        throw std::invalid_argument("membership bits must be a contiguous 1-D uint64 array");
    }
    t_bits = static_cast<const std::uint64_t*>(info.ptr);
    t_nbits = static_cast<std::size_t>(info.size) * 64;
}

void clear_bits() {
    t_bits = nullptr;
    t_nbits = 0;
}

// Reads the CRoaring portable serialization (what pyroaring's BitMap.serialize() returns; spec:
// github.com/RoaringBitmap/RoaringFormatSpec) into a bit array of (last key + 1) * 1024 words.
class PortableReader {
public:
    PortableReader(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}

    template <typename T>
    T read() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, p_, sizeof(T));  // little-endian on every platform hnswlib builds on
        p_ += sizeof(T);
        return v;
    }
    const std::uint8_t* take(std::size_t n) {
        need(n);
        const std::uint8_t* at = p_;
        p_ += n;
        return at;
    }

private:
    void need(std::size_t n) const {
        if (static_cast<std::size_t>(end_ - p_) < n) {
            throw std::invalid_argument("truncated roaring bitmap serialization");
        }
    }
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

constexpr std::uint32_t kCookieRuns = 12347;  // SERIAL_COOKIE: some containers are runs
constexpr std::uint32_t kCookieNoRuns = 12346;  // SERIAL_COOKIE_NO_RUNCONTAINER
constexpr std::uint32_t kNoOffsetThreshold = 4;
constexpr std::size_t kWordsPerContainer = 1024;  // 65536 bits

py::array_t<std::uint64_t> roaring_bits(const py::bytes& serialized) {
    std::string_view raw = serialized;  // pybind11 >= 2.10: bytes -> string_view, no copy
    PortableReader in(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size());
    const auto cookie = in.read<std::uint32_t>();
    std::size_t n = 0;
    const std::uint8_t* run_flags = nullptr;
    if ((cookie & 0xFFFF) == kCookieRuns) {
        n = (cookie >> 16) + 1;
        run_flags = in.take((n + 7) / 8);
    } else if (cookie == kCookieNoRuns) {
        n = in.read<std::uint32_t>();
    } else {
        throw std::invalid_argument("not a roaring bitmap serialization (bad cookie)");
    }
    std::vector<std::uint16_t> keys(n), cards(n);
    for (std::size_t i = 0; i < n; ++i) {
        keys[i] = in.read<std::uint16_t>();
        cards[i] = in.read<std::uint16_t>();  // cardinality - 1
        // Ascending keys keep every container inside the words sized from the last key.
        if (i > 0 && keys[i] <= keys[i - 1]) {
            throw std::invalid_argument("roaring container keys out of order");
        }
    }
    if (run_flags == nullptr || n >= kNoOffsetThreshold) in.take(4 * n);  // offsets: unused
    const std::size_t words = n == 0 ? 0 : (static_cast<std::size_t>(keys[n - 1]) + 1) *
                                               kWordsPerContainer;
    py::array_t<std::uint64_t> out(static_cast<py::ssize_t>(words));
    std::uint64_t* bits = out.mutable_data();
    std::memset(bits, 0, words * sizeof(std::uint64_t));
    for (std::size_t i = 0; i < n; ++i) {
        std::uint64_t* dst = bits + static_cast<std::size_t>(keys[i]) * kWordsPerContainer;
        const std::size_t card = static_cast<std::size_t>(cards[i]) + 1;
        if (run_flags != nullptr && ((run_flags[i / 8] >> (i % 8)) & 1U)) {
            const auto runs = in.read<std::uint16_t>();
            for (std::uint16_t r = 0; r < runs; ++r) {
                const std::uint32_t start = in.read<std::uint16_t>();
                const std::uint32_t stop = start + in.read<std::uint16_t>();  // inclusive
                if (stop > 0xFFFF) throw std::invalid_argument("roaring run past its container");
                for (std::uint32_t v = start; v <= stop; ++v) dst[v >> 6] |= 1ULL << (v & 63);
            }
        } else if (card > 4096) {  // bitset container
            std::memcpy(dst, in.take(kWordsPerContainer * 8), kWordsPerContainer * 8);
        } else {  // array container: sorted uint16 values
            const std::uint8_t* vals = in.take(card * 2);
            for (std::size_t j = 0; j < card; ++j) {
                std::uint16_t v;
                std::memcpy(&v, vals + 2 * j, 2);
                dst[v >> 6] |= 1ULL << (v & 63);
            }
        }
    }
    return out;
}

// The portable serialization of the set of `labels` (uint32 or int64, any order, repeats
// allowed; each must be a uint32): what pyroaring's BitMap.deserialize() reads. Building a
// BitMap from a label array inserts label by label (12-24 µs per thousand labels in
// benchmarks/results/range_index.md); deserializing copies whole containers, so this is the
// fast way from labels to a BitMap.
// Containers are arrays up to 4096 values and bitsets above, as CRoaring makes them; no runs.
template <typename T>
py::bytes roaring_of_labels(const T* lab, std::size_t n) {
    std::uint64_t top = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const auto v = static_cast<std::int64_t>(lab[i]);
        if (v < 0 || v > 0xFFFFFFFFLL) throw std::invalid_argument("label outside uint32");
        top = std::max<std::uint64_t>(top, static_cast<std::uint64_t>(v));
    }
    const std::size_t chunks = n == 0 ? 0 : static_cast<std::size_t>(top >> 16) + 1;
    // Sparse input (few labels over many chunks): sort the labels instead of scanning bits.
    std::vector<std::uint64_t> words;
    std::vector<std::uint32_t> sorted;
    const bool sparse = n * 4 < chunks * kWordsPerContainer;
    std::vector<std::uint32_t> cards(chunks, 0);
    if (sparse) {
        sorted.assign(lab, lab + n);
        std::sort(sorted.begin(), sorted.end());
        sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
        for (std::uint32_t v : sorted) ++cards[v >> 16];
    } else {
        words.assign(chunks * kWordsPerContainer, 0);
        for (std::size_t i = 0; i < n; ++i) {
            const auto v = static_cast<std::uint64_t>(lab[i]);
            words[v >> 6] |= 1ULL << (v & 63);
        }
        for (std::size_t c = 0; c < chunks; ++c) {
            const std::uint64_t* w = words.data() + c * kWordsPerContainer;
            std::uint32_t card = 0;
            for (std::size_t i = 0; i < kWordsPerContainer; ++i) {
                card += static_cast<std::uint32_t>(__builtin_popcountll(w[i]));
            }
            cards[c] = card;
        }
    }
    std::size_t used = 0, bytes = 8;
    for (std::size_t c = 0; c < chunks; ++c) {
        if (cards[c] == 0) continue;
        ++used;
        bytes += 8 + (cards[c] > 4096 ? kWordsPerContainer * 8 : std::size_t{cards[c]} * 2);
    }
    std::string out(bytes, '\0');
    char* p = out.data();
    auto put = [&p](const void* src, std::size_t len) { std::memcpy(p, src, len); p += len; };
    const std::uint32_t cookie = kCookieNoRuns, count = static_cast<std::uint32_t>(used);
    put(&cookie, 4);
    put(&count, 4);
    for (std::size_t c = 0; c < chunks; ++c) {
        if (cards[c] == 0) continue;
        const auto key = static_cast<std::uint16_t>(c);
        const auto card1 = static_cast<std::uint16_t>(cards[c] - 1);
        put(&key, 2);
        put(&card1, 2);
    }
    auto container_bytes = [](std::uint32_t card) -> std::size_t {
        return card > 4096 ? kWordsPerContainer * 8 : std::size_t{card} * 2;
    };
    auto offset = static_cast<std::uint32_t>(8 + 8 * used);
    for (std::size_t c = 0; c < chunks; ++c) {
        if (cards[c] == 0) continue;
        put(&offset, 4);
        offset += static_cast<std::uint32_t>(container_bytes(cards[c]));
    }
    std::size_t next = 0;  // sparse: position in `sorted`
    for (std::size_t c = 0; c < chunks; ++c) {
        if (cards[c] == 0) continue;
        if (cards[c] > 4096) {
            if (sparse) {  // a dense chunk among sparse ones: its bits from the sorted run
                std::uint64_t chunk[kWordsPerContainer] = {};
                for (std::uint32_t j = 0; j < cards[c]; ++j) {
                    const std::uint32_t low = sorted[next++] & 0xFFFF;
                    chunk[low >> 6] |= 1ULL << (low & 63);
                }
                put(chunk, sizeof(chunk));
            } else {
                put(words.data() + c * kWordsPerContainer, kWordsPerContainer * 8);
            }
        } else if (sparse) {
            for (std::uint32_t j = 0; j < cards[c]; ++j) {
                const std::uint16_t low = static_cast<std::uint16_t>(sorted[next++] & 0xFFFF);
                put(&low, 2);
            }
        } else {
            const std::uint64_t* w = words.data() + c * kWordsPerContainer;
            for (std::size_t i = 0; i < kWordsPerContainer; ++i) {
                for (std::uint64_t bits = w[i]; bits != 0; bits &= bits - 1) {
                    const auto low = static_cast<std::uint16_t>(i * 64 + __builtin_ctzll(bits));
                    put(&low, 2);
                }
            }
        }
    }
    return py::bytes(out);
}

constexpr int kContiguous = py::array::c_style | py::array::forcecast;

py::bytes roaring_of(const py::array& labels) {
    if (labels.ndim() != 1) throw std::invalid_argument("labels must be a 1-D array");
    if (py::isinstance<py::array_t<std::uint32_t>>(labels)) {
        auto a = py::array_t<std::uint32_t, kContiguous>::ensure(labels);
        return roaring_of_labels(a.data(), static_cast<std::size_t>(a.size()));
    }
    if (py::isinstance<py::array_t<std::int64_t>>(labels)) {
        auto a = py::array_t<std::int64_t, kContiguous>::ensure(labels);
        return roaring_of_labels(a.data(), static_cast<std::size_t>(a.size()));
    }
    throw std::invalid_argument("labels must be uint32 or int64");
}

}  // namespace

PYBIND11_MODULE(_native_filter, m) {
    m.doc() = "Thread-local label filters (membership bits, a column range) for hnswlib's "
            "knn_query (GIL-free fast path).";
    m.def("allowed", &allowed, py::arg("label"),
          "True when `label` is set in this thread's installed membership bits.");
    m.def("set_bits", &set_bits, py::arg("bits"),
          "Install a contiguous uint64 array as this thread's membership bits (borrowed: the "
          "caller keeps it alive until clear_bits()).");
    m.def("clear_bits", &clear_bits, "Uninstall this thread's membership bits.");
    m.def("in_range", &in_range, py::arg("label"),
          "True when column[label] lies within this thread's installed range (NaN: never).");
    m.def("set_range", &set_range, py::arg("column"), py::arg("lo"), py::arg("lo_incl"),
          py::arg("hi"), py::arg("hi_incl"),
          "Install a contiguous float64 column (borrowed: the caller keeps it alive and "
          "unchanged until clear_range()) and bounds as this thread's range filter.");
    m.def("clear_range", &clear_range, "Uninstall this thread's range filter.");
    m.def("in_codes", &in_codes, py::arg("label"),
          "True when codes[label] is one of this thread's installed allowed codes.");
    m.def("set_codes", &set_codes, py::arg("codes"), py::arg("allowed"),
          "Install a contiguous int32 code column and uint64 bits of allowed codes (borrowed: "
          "the caller keeps both alive and unchanged until clear_codes()).");
    m.def("clear_codes", &clear_codes, "Uninstall this thread's code filter.");
    m.def("roaring_bits", &roaring_bits, py::arg("serialized"),
          "The uint64 bit array of a pyroaring BitMap.serialize() (words up to its last "
          "container).");
    m.def("roaring_of", &roaring_of, py::arg("labels"),
          "The roaring portable serialization (BitMap.deserialize) of a uint32 or int64 label "
          "array, any order, repeats allowed.");
    m.def("calls", []() { return t_calls; }, "Filter calls made on this thread.");
    m.def("gil_seen", []() { return t_gil_seen; },
          "Whether a filter call on this thread ran with the GIL held (the slow path).");
    m.def("reset_stats", []() { t_calls = 0; t_gil_seen = false; },
          "Reset this thread's calls() and gil_seen().");
}
