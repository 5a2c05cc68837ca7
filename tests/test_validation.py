"""One validation for every method: the same bad kernel or parameter gets the same clear ValueError from MMSE,
IRD, hyper-Laplacian and CRCNet, naming what is wrong (holes found by an audit with bad inputs)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_crcnet as nc
from napari_crcnet.deconv import parse_indices
from napari_crcnet.kernels import gaussian_kernel, validate_kernel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = gaussian_kernel(1.0)


def _methods(model_path):
    return {
        "mmse": lambda image, kernel: nc.mmse(image, kernel, 0.01),
        "ird": lambda image, kernel: nc.ird(image, kernel, 0.01, 10),
        "hyper-laplacian": lambda image, kernel: nc.hyper_laplacian(image, kernel, 1000.0),
        "crcnet": lambda image, kernel: nc.crcnet(image, model_path, kernel, noise=0.01, device="cpu"),
    }


@pytest.mark.parametrize(
    "kernel",
    [-K, K.astype(np.complex128), K.astype(object), np.zeros((3, 3)), np.full((3, 3), np.nan),
     np.array([["a", "b"], ["c", "d"]])],
    ids=["negated", "complex", "object", "zero-sum", "nan", "strings"],
)
def test_every_method_refuses_a_bad_kernel_with_the_same_message(any_kernel_gray_model, kernel):
    image = np.random.default_rng(0).random((24, 24))
    with pytest.raises(ValueError) as expected:
        validate_kernel(kernel)
    for name, method in _methods(any_kernel_gray_model).items():
        with pytest.raises(ValueError) as error:
            method(image, kernel)
        assert str(error.value) == str(expected.value), name


def test_a_kernel_whose_sum_overflows_deblurs_like_the_same_kernel_scaled(any_kernel_gray_model):
    image = nc.blur(np.random.default_rng(1).random((24, 24)), np.full((3, 3), 1 / 9))
    for name, method in _methods(any_kernel_gray_model).items():
        huge = method(image, np.full((3, 3), 1e308))
        assert np.all(np.isfinite(huge)) and np.ptp(huge) > 0, name
        np.testing.assert_allclose(huge, method(image, np.full((3, 3), 1.0)), atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda im: nc.mmse(np.stack([im] * 3, -1), K, 0.01, channel_axis=1.5), "channel_axis must be an integer"),
        (lambda im: nc.ird(im, K, 0.01, channel_axis=np.float64(2.0)), "channel_axis must be an integer"),
        (lambda im: nc.ird(im, K, 0.01, 10**30), "n_iter must be at most"),
        (lambda im: nc.ird_residues(im, K, 0.01, [0, 10**30]), "residue index|every n in ns"),
        (lambda im: nc.mmse(im, K, True), "sigma must be a number, not True"),
        (lambda im: nc.ird(im, K, np.True_, 10), "sigma must be a number"),
        (lambda im: nc.hyper_laplacian(im, K, "abc"), "lam must be a number, not 'abc'"),
        (lambda im: nc.hyper_laplacian(im, K, 1000.0, "x"), "alpha must be a number"),
        (lambda im: nc.hyper_laplacian(im, K, True), "lam must be a number, not True"),
        (lambda im: nc.crcnet(im, kernel=K, channel_axis=1.5), "channel_axis must be an integer"),
    ],
)
def test_errors_name_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.random.default_rng(2).random((24, 24)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0,1,5", [0, 1, 5]), ("0-3", [0, 1, 2, 3]), (" 5; 2-3 ,5,", [2, 3, 5]), ("7", [7])],
)
def test_parse_indices_lists_and_ranges(text, expected):
    assert parse_indices(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [("1,a", "not a list of residue indices"), ("", "at least one"), ("-1", "not a list|>= 0"),
     ("5-2", "A <= B"), ("0-100000000", "more than"), ("1.5", "not a list"), (str(10**30), "at most")],
)
def test_parse_indices_refuses_with_an_example(text, match):
    with pytest.raises(ValueError, match=match):
        parse_indices(text)
