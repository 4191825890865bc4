"""The update clock: forward passes -> optimizer updates, and the checkpoint key kept by its owner."""
import torch

from salign.utils.clock import UpdateClock


def test_the_nth_forward_sees_the_updates_before_it():
    clock = UpdateClock(accum_grad=3)
    seen = []
    for _ in range(7):
        seen.append(clock.num_updates)
        clock.tick()
    assert seen == [0, 0, 0, 1, 1, 1, 2]  # u = (n - 1) // accum_grad
    assert UpdateClock(accum_grad=0).num_updates == 0  # a bad factor never divides by zero


class Owner(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.ticks = UpdateClock()
        self.ticks.attach(self, "ticks")


def test_attach_keeps_the_counter_at_the_owner_level_in_checkpoints():
    a = Owner()
    a.ticks.tick()
    state = a.state_dict()
    assert set(state) == {"lin.weight", "lin.bias", "forward_count"} and int(state["forward_count"]) == 1
    b = Owner()
    b.load_state_dict(state)
    assert int(b.ticks.forward_count) == 1
    b.load_state_dict({**state, "forward_count": torch.tensor(5)})
    assert int(b.ticks.forward_count) == 5
    copy = torch.nn.Sequential(Owner())
    assert "0.forward_count" in copy.state_dict()
