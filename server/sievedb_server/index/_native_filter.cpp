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
// storage: the Python side installs a byte-per-label buffer (1 = allowed) for the calling
// thread, searches, and clears it. hnswlib calls the filter on the calling thread as long as
// the search does not fan out to worker threads (num_threads == 1, or few queries); the
// Python wrapper (native_filter.py) only uses this filter then.
//
// The buffer's memory is owned by a numpy array that the Python side keeps referenced for
// as long as it is installed; this module only borrows the pointer.

#include <pybind11/pybind11.h>

#include <Python.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace py = pybind11;

namespace {

thread_local const std::uint8_t* t_buf = nullptr;  // membership bytes, one per label
thread_local std::size_t t_len = 0;                 // labels >= t_len are not allowed
thread_local std::uint64_t t_calls = 0;             // filter calls on this thread
thread_local bool t_gil_seen = false;               // any call made with the GIL held?

// The filter hnswlib calls per candidate. Its signature must stay exactly bool(size_t) and it
// must stay a plain function (no captures) or pybind11 falls back to the Python-call wrapper.
bool allowed(std::size_t label) {
    ++t_calls;
    // On the fast path hnswlib has released the GIL; if we see it held, pybind11 wrapped us
    // in a Python call (slow path). Cheap: a thread-state comparison.
    if (PyGILState_Check()) t_gil_seen = true;
    return label < t_len && t_buf[label] != 0;
}

void set_buffer(const py::buffer& buf) {
    py::buffer_info info = buf.request();
    if (info.ndim != 1 || info.itemsize != 1 || (info.size > 1 && info.strides[0] != 1)) {
        throw std::invalid_argument("membership buffer must be a contiguous 1-D uint8 array");
    }
    t_buf = static_cast<const std::uint8_t*>(info.ptr);
    t_len = static_cast<std::size_t>(info.size);
}

void clear_buffer() {
    t_buf = nullptr;
    t_len = 0;
}

// Write 1 at every label of a uint32 array into a zeroed uint8 array (numpy's `buf[labels] = 1`
// without the fancy-indexing overhead). Labels outside the buffer raise.
void mark(py::buffer out, const py::buffer& labels) {
    py::buffer_info o = out.request(true), l = labels.request();
    if (o.ndim != 1 || o.itemsize != 1 || (o.size > 1 && o.strides[0] != 1)) {
        throw std::invalid_argument("out must be a contiguous 1-D uint8 array");
    }
    if (l.ndim != 1 || l.itemsize != 4 || (l.size > 1 && l.strides[0] != 4)) {
        throw std::invalid_argument("labels must be a contiguous 1-D uint32 array");
    }
    auto* dst = static_cast<std::uint8_t*>(o.ptr);
    const auto* src = static_cast<const std::uint32_t*>(l.ptr);
    const auto n = static_cast<std::size_t>(o.size);
    py::gil_scoped_release release;
    for (py::ssize_t i = 0; i < l.size; ++i) {
        if (src[i] >= n) throw std::out_of_range("label beyond the membership buffer");
        dst[src[i]] = 1;
    }
}

}  // namespace

PYBIND11_MODULE(_native_filter, m) {
    m.doc() = "Thread-local byte-per-label filter for hnswlib's knn_query (GIL-free fast path).";
    m.def("allowed", &allowed, py::arg("label"),
          "True when `label` is set in this thread's installed membership buffer.");
    m.def("set_buffer", &set_buffer, py::arg("buf"),
          "Install a contiguous uint8 array as this thread's membership buffer (borrowed: the "
          "caller keeps it alive until clear_buffer()).");
    m.def("clear_buffer", &clear_buffer, "Uninstall this thread's membership buffer.");
    m.def("mark", &mark, py::arg("out"), py::arg("labels"),
          "out[labels] = 1 for a uint8 `out` and uint32 `labels`.");
    m.def("calls", []() { return t_calls; }, "Filter calls made on this thread.");
    m.def("gil_seen", []() { return t_gil_seen; },
          "Whether a filter call on this thread ran with the GIL held (the slow path).");
    m.def("reset_stats", []() { t_calls = 0; t_gil_seen = false; },
          "Reset this thread's calls() and gil_seen().");
}
