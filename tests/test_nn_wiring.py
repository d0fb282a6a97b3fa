"""prepare(): master/sibling wiring, alpha sharing with private FLs, identity chains, first layer."""

import pytest
import torch

import f8hw.nn as f8nn
from f8hw.models import BasicBlock, Classifier, InvertedResidual


class _TwoBlocks(torch.nn.Module):
    """stem -> identity block -> downsample block -> classifier."""

    def __init__(self):
        super().__init__()
        self.stem = f8nn.QConv2d(1, 4, 3, 1, 1)
        self.same = BasicBlock(4, 4)
        self.down = BasicBlock(4, 8, 2)
        self.head = Classifier(8, 10)

    def forward(self, x):
        return self.head(self.down(self.same(self.stem(x))))


@pytest.fixture
def model():
    m = _TwoBlocks()
    f8nn.prepare(m, torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    return m


def test_first_layer_reads_the_image_at_fl8_with_eta_1(model):
    assert model.stem.act.image_input and model.stem.act.eval_fl() == 8 and model.stem.act.eta() == 1.0
    assert not model.same.conv1.act.image_input


def test_master_child_gives_eta_next(model):
    # the stem's output is read by same.conv1 (master) and used as the identity skip
    assert model.stem.links["next"] is model.same.conv1.act
    assert model.same.add.links["skip_quant"] is model.same.conv1.act
    # downsample block: conv1 is the master, shortcut a sibling
    assert model.same.conv2.links["next"] is model.down.conv1.act
    assert model.down.shortcut.links["next"] is model.head.fc.act
    assert model.down.conv2.links["next"] is model.head.fc.act  # through the add and the pool
    assert "skip_quant" not in model.down.add.links  # its skip (a conv output) has its own quantizer
    assert model.head.fc.links["next"] is None  # logits


def test_siblings_share_the_master_alpha_but_keep_private_fls(model):
    master, sibling = model.down.conv1.act, model.down.shortcut.act
    owner = sibling.links["alpha_owner"]
    assert owner is master.links["alpha_owner"]  # the group's master (here the identity chain's first layer)
    owner.alpha.data.fill_(4.0)
    master.fl_buffer.fill_(5.0)
    sibling.fl_buffer.fill_(3.0)
    assert master.eta().item() == pytest.approx(2**5 * 4.0 / 255)
    assert sibling.eta().item() == pytest.approx(2**3 * 4.0 / 255)  # same alpha, own FL
    assert sibling.alpha.item() == 8.0  # its own parameter is unused while shared


def test_identity_residual_chains_share_one_clipping_group(model):
    # same.conv1 reads the block input; the block's output is read by down.conv1:
    # the integer add needs both in one alpha group (paper's reference passes the master along)
    owner = model.down.conv1.act.links.get("alpha_owner")
    assert owner is model.same.conv1.act
    assert model.down.shortcut.act.links["alpha_owner"] is model.same.conv1.act
    assert "alpha_owner" not in model.same.conv2.act.links  # inside a block: its own group


def test_signed_linear_bottleneck_residual():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = f8nn.QConv2d(1, 4, 3, 1, 1)
            self.a = InvertedResidual(4, 6, 1, 1, signed_input=False)
            self.b = InvertedResidual(6, 6, 1, 2, signed_input=True)
            self.head = Classifier(6, 3, signed_input=True)

        def forward(self, x):
            return self.head(self.b(self.a(self.stem(x))))

    m = Net()
    f8nn.prepare(m, torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    assert m.b.expand.act.signed and m.b.add.links["skip_quant"] is m.b.expand.act
    assert m.a.project.links["next"] is m.b.expand.act
    assert m.head.pool.act.signed
