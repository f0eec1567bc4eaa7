"""The attention kernels agree with the dense reference, respect causality and the window, and route."""

import pytest
import torch

from models.attention import attention, get_attention_impl, set_attention_impl, use_attention_impl


def qkv(T, H=4, Hkv=2, D=16, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, T, D, generator=g), torch.randn(B, Hkv, T, D, generator=g), torch.randn(B, Hkv, T, D, generator=g))


@pytest.mark.parametrize("T,window", [(10, 3), (37, 5), (64, 64), (65, 64), (200, 64), (300, 100), (257, 1), (500, 130), (1000, 129), (96, 200)])
def test_banded_sdpa_matches_naive(T, window):
    q, k, v = qkv(T)
    torch.testing.assert_close(attention(q, k, v, window, "sdpa"), attention(q, k, v, window, "naive"), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("T", [1, 17, 128])
def test_full_causal_matches_naive(T):
    q, k, v = qkv(T)
    torch.testing.assert_close(attention(q, k, v, None, "sdpa"), attention(q, k, v, None, "naive"), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_tokens_outside_the_window_have_no_effect(impl):
    T, window = 300, 70
    q, k, v = qkv(T)
    out = attention(q, k, v, window, impl)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, :100] += 5.0  # positions 0..99 are beyond the reach (70 back) of every query from 170 on
    v2[:, :, :100] -= 3.0
    out2 = attention(q, k2, v2, window, impl)
    torch.testing.assert_close(out[:, :, 170:], out2[:, :, 170:], atol=1e-6, rtol=0)
    assert not torch.allclose(out[:, :, 169], out2[:, :, 169])  # 169 reaches back to 99: it matters


@pytest.mark.parametrize("impl,window", [("sdpa", 50), ("sdpa", None), ("naive", 50)])
def test_future_keys_have_no_effect(impl, window):
    q, k, v = qkv(150)
    out = attention(q, k, v, window, impl)
    k[:, :, 120:] = 9.0
    v[:, :, 120:] = 9.0
    torch.testing.assert_close(out[:, :, :120], attention(q, k, v, window, impl)[:, :, :120])


def test_gqa_shapes_and_equivalence_to_repeated_heads():
    q, k, v = qkv(40, H=6, Hkv=2)
    out = attention(q, k, v, 16, "sdpa")
    assert out.shape == q.shape
    expanded = attention(q, k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1), 16, "sdpa")
    torch.testing.assert_close(out, expanded)


def test_banded_path_has_gradients_equal_to_naive():
    q, k, v = (t.requires_grad_() for t in qkv(150, H=2, Hkv=1))
    attention(q, k, v, 40, "sdpa").square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    attention(q, k, v, 40, "naive").square().sum().backward()
    for a, t in zip(grads, (q, k, v)):
        torch.testing.assert_close(a, t.grad, atol=1e-4, rtol=1e-4)


def test_impl_hook_and_fallbacks():
    q, k, v = qkv(30)
    before = get_attention_impl()
    with use_attention_impl("naive"):
        assert get_attention_impl() == "naive"
        forced = attention(q, k, v, 8)
    assert get_attention_impl() == before
    torch.testing.assert_close(forced, attention(q, k, v, 8, "naive"))
    # flex is taken only under torch.compile: eagerly it falls back to sdpa with the same result
    torch.testing.assert_close(attention(q, k, v, 8, "flex"), attention(q, k, v, 8, "sdpa"))
    with pytest.raises(ValueError, match="Unknown attention implementation"):
        set_attention_impl("magic")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("T,window", [(200, 37), (256, 64), (128, 128)])
def test_flex_block_mask_semantics_match_naive(T, window):
    """The compiled path's mask_mod, run by flex_attention's eager reference on CPU (routing never goes there eagerly).
    _flex takes the span (keys seen: the reach plus the query itself)."""
    from models import attention as attention_module

    if attention_module.flex_attention is None:
        pytest.skip("this torch has no flex_attention")
    q, k, v = qkv(T, H=4, Hkv=2)
    torch.testing.assert_close(attention_module._flex(q, k, v, window + 1), attention(q, k, v, window, "naive"), atol=2e-5, rtol=1e-4)
