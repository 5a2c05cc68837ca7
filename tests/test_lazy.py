"""deblur_lazy: chunks of whole planes deblurred independently, lazily, equal to the eager call."""

from __future__ import annotations

import numpy as np
import pytest

import napari_crcnet as nc

da = pytest.importorskip("dask.array")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _movie(shape, seed=0, channel_axis=None):
    kernel = nc.gaussian_kernel(1.2)
    clear = np.random.default_rng(seed).random(shape)
    return nc.blur(clear, kernel, noise=0.01, seed=seed, channel_axis=channel_axis), kernel


def test_a_gray_movie_equals_the_eager_call_and_nothing_runs_before_compute():
    frames, kernel = _movie((5, 40, 36))
    calls: list[tuple[int, ...]] = []

    def counted_mmse(chunk, *args, **kwargs):
        calls.append(chunk.shape)
        return nc.mmse(chunk, *args, **kwargs)

    lazy = nc.deblur_lazy(counted_mmse, da.from_array(frames, chunks=(2, 20, 18)), kernel, sigma=0.01)
    assert calls == [] and lazy.shape == frames.shape and lazy.dtype == np.float32
    assert lazy.chunks == ((2, 2, 1), (40,), (36,))  # leading chunks kept, planes made whole
    np.testing.assert_allclose(lazy.compute(), nc.mmse(frames, kernel, 0.01), atol=1e-6)
    assert sorted(calls) == [(1, 40, 36), (2, 40, 36), (2, 40, 36)]
    # One frame of the result computes one chunk only (what napari does when it shows a frame).
    calls.clear()
    np.testing.assert_allclose(lazy[4].compute(), nc.mmse(frames[4], kernel, 0.01), atol=1e-6)
    assert calls == [(1, 40, 36)]


def test_rgb_channels_last_and_other_methods():
    frames, kernel = _movie((3, 32, 30, 3), seed=1, channel_axis=-1)
    lazy_input = da.from_array(frames, chunks=(1, 16, 30, 1))  # colour split too: merged into whole planes
    for method, args in ((nc.ird, (0.01, 20)), (nc.hyper_laplacian, (1000.0,))):
        lazy = nc.deblur_lazy(method, lazy_input, kernel, *args, channel_axis=-1)
        assert lazy.chunks[1:] == ((32,), (30,), (3,))
        np.testing.assert_allclose(lazy.compute(), method(frames, kernel, *args, channel_axis=-1), atol=1e-5)


def test_a_crcnet_model_and_a_plain_array():
    import torch

    from napari_crcnet.models import CRCNet, CRCNetConfig

    torch.manual_seed(0)
    frames, kernel = _movie((2, 24, 24), seed=2)
    card = {"name": "tiny", "kernel": kernel.tolist(), "mmse_sigma": 0.01}
    model = (CRCNet(CRCNetConfig(in_channels=1, n_units=2, iu_channels=4)), card)
    lazy = nc.deblur_lazy(nc.crcnet, frames, model, kernel, device="cpu")  # a NumPy input is wrapped
    np.testing.assert_allclose(lazy.compute(), nc.crcnet(frames, model, kernel, device="cpu"), atol=1e-5)


def test_bad_axes_are_refused_before_anything_runs():
    frames, kernel = _movie((2, 16, 16))
    with pytest.raises(ValueError, match="out of range"):
        nc.deblur_lazy(nc.mmse, da.from_array(frames), kernel, channel_axis=5)
    with pytest.raises(ValueError, match="spatial axes"):
        nc.deblur_lazy(nc.mmse, da.from_array(frames[0, 0]), kernel)


@pytest.mark.parametrize(
    "method",
    [lambda chunk, k: nc.mmse(chunk, k, 0.01)[..., :-1],  # drops a column
     lambda chunk, k: nc.mmse(chunk, k, 0.01)[0],  # drops the leading axis
     lambda chunk, k: (nc.mmse(chunk, k, 0.01), [chunk])],  # a (result, residues) pair
)
def test_a_method_returning_another_shape_is_a_clear_error(method):
    frames, kernel = _movie((2, 16, 16))
    lazy = nc.deblur_lazy(method, da.from_array(frames, chunks=(1, 16, 16)), kernel)
    with pytest.raises(ValueError, match=r"deblur_lazy: .* returned .* for a chunk of shape \(1, 16, 16\)"):
        lazy.compute()


def test_a_cluster_of_separate_processes_gives_the_eager_result_and_loads_models_by_name():
    """dask.distributed with worker processes: each worker loads the model by name itself."""
    distributed = pytest.importorskip("distributed")

    frames, kernel = _movie((4, 40, 40), seed=3)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        lazy = nc.deblur_lazy(nc.mmse, da.from_array(frames, chunks=(1, 40, 40)), kernel, sigma=0.01)
        np.testing.assert_allclose(client.compute(lazy).result(), nc.mmse(frames, kernel, 0.01), atol=1e-6)
        model = nc.deblur_lazy(nc.crcnet, da.from_array(frames, chunks=(2, 40, 40)), "any-kernel-gray",
                               kernel=kernel, noise=0.01, device="cpu")
        workers = set(client.run(lambda: __import__("os").getpid()).values())
        assert len(workers) == 2 and __import__("os").getpid() not in workers  # separate processes
        np.testing.assert_allclose(client.compute(model).result(),
                                   nc.crcnet(frames, "any-kernel-gray", kernel=kernel, noise=0.01, device="cpu"),
                                   atol=1e-5)
