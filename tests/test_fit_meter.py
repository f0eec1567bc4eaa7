"""training/tensor_peak.py's view of the live tensors: each storage once, and a dead weak proxy (torch.compile leaves
some to the collector) and a fake tensor do not stop it."""
import gc
import weakref

import torch

from training.tensor_peak import live_tensor_bytes


class Referent:
    pass


def test_live_tensors_are_counted_once_per_storage_and_a_dead_proxy_is_passed_over():
    referent = Referent()
    holder = [weakref.proxy(referent)]  # a list keeps the proxy where the collector lists it
    del referent
    gc.collect()
    before = live_tensor_bytes()
    tensor = torch.zeros(1000, 1000)
    views = [tensor[:10], tensor.view(-1)]  # views share the storage: counted once
    assert live_tensor_bytes() - before == 4_000_000
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():  # fake tensors (torch.compile leaves some) hold no memory and no data pointer
        fake = torch.zeros(1000, 1000)
    assert live_tensor_bytes() - before == 4_000_000
    del tensor, views, holder, fake
