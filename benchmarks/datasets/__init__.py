"""Benchmark datasets behind one interface (`base.Dataset`), opened from a spec by `kind`.

    from benchmarks.datasets import open_dataset
    ds = open_dataset({"kind": "arxiv-fanns", "path": "data/arxiv-for-fanns-medium"})

Each kind is registered here in one line; the module is imported only when its kind is opened
(so h5py is needed only for `ann-hdf5`).
"""

from benchmarks.datasets.base import Dataset, kinds, open_dataset, register

__all__ = ["Dataset", "kinds", "open_dataset", "register"]

register("arxiv-fanns", "benchmarks.datasets.arxiv_fanns:ArxivFanns")
register("yfcc-filter", "benchmarks.datasets.yfcc:YfccFilter")
register("ann-hdf5", "benchmarks.datasets.ann_hdf5:AnnHdf5")
