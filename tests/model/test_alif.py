"""ALIF gates and the bidirectional fusion attention."""

from __future__ import annotations

import pytest
import torch

from model.alif import BiMultiHeadAttention, FusionBlock, Gate


def test_scalar_gate_is_alpha_times_x_starting_at_a_quarter() -> None:
    gate = Gate("scalar", 8, init=0.25, tanh=False)
    x = torch.randn(2, 5, 8)
    assert gate.alpha.shape == (1,)
    torch.testing.assert_close(gate(x), 0.25 * x)
    with torch.no_grad():
        gate.alpha.fill_(-1.5)
    torch.testing.assert_close(gate(x), -1.5 * x)


@pytest.mark.parametrize("kind,shape", [("scalar", (1,)), ("vector", (8,))])
def test_tanh_gates(kind: str, shape: tuple[int, ...]) -> None:
    gate = Gate(kind, 8, init=2.0, tanh=True)
    x = torch.randn(3, 8)
    assert gate.alpha.shape == shape
    torch.testing.assert_close(gate(x), torch.tanh(torch.tensor(2.0)) * x)


@pytest.mark.parametrize("tanh", [False, True])
def test_squeeze_excitation_gate(tanh: bool) -> None:
    gate = Gate("se", 16, init=0.25, tanh=tanh, se_reduction=4)
    assert gate.down.out_features == 4 and gate.up.out_features == 16
    x = torch.randn(2, 3, 16)
    weight = gate.up(torch.relu(gate.down(x)))
    expected = (torch.tanh(weight) if tanh else weight) * x
    torch.testing.assert_close(gate(x), expected)


def test_fusion_ignores_padding_and_updates_both_sides() -> None:
    torch.manual_seed(0)
    block = FusionBlock(v_dim=8, l_dim=12, embed_dim=16, num_heads=4, dropout=0.0, gate="vector", gate_init=0.25,
                        gate_tanh=False, se_reduction=4).eval()
    v, lang = torch.randn(1, 6, 8), torch.randn(1, 3, 12)
    v_pad = torch.tensor([[False] * 5 + [True]])
    l_pad = torch.tensor([[False, False, True]])
    out_v, out_l = block(v, lang, None, v_pad, l_pad)
    # Changing padded tokens changes nothing for the valid ones.
    v2, lang2 = v.clone(), lang.clone()
    v2[0, 5] += 100.0
    lang2[0, 2] -= 50.0
    out_v2, out_l2 = block(v2, lang2, None, v_pad, l_pad)
    torch.testing.assert_close(out_v[0, :5], out_v2[0, :5])
    torch.testing.assert_close(out_l[0, :2], out_l2[0, :2])
    # The residual starts from the normalised inputs (official GLIP block).
    assert not torch.allclose(out_v, block.layer_norm_v(v))


def test_bi_attention_output_widths() -> None:
    attn = BiMultiHeadAttention(v_dim=8, l_dim=12, embed_dim=32, num_heads=8, dropout=0.0)
    dv, dl = attn(torch.randn(2, 7, 8), torch.randn(2, 4, 12), torch.randn(2, 7, 8),
                  torch.zeros(2, 7, dtype=torch.bool), torch.zeros(2, 4, dtype=torch.bool))
    assert dv.shape == (2, 7, 8) and dl.shape == (2, 4, 12)
