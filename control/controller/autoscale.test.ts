import t from 'tap';
import { capScaleOut } from './autoscale';

t.test('a scale-out is capped by the owner memory limit and the DEAs free room, and says so', async (t) => {
  t.same(capScaleOut({ from: 1, to: 4, memoryMb: 256, ownerRoomMb: undefined, deaRoom: 10 }), { to: 4 });
  t.same(capScaleOut({ from: 1, to: 4, memoryMb: 256, ownerRoomMb: 512, deaRoom: 10 }), {
    to: 3,
    capped: "capped at 3 of 4 wanted: the owner's memory limit leaves room for 2 more of 256M",
  });
  t.same(capScaleOut({ from: 1, to: 4, memoryMb: 256, ownerRoomMb: undefined, deaRoom: 1 }), { to: 2, capped: 'capped at 2 of 4 wanted: the DEAs have room for 1 more of 256M' });
  t.same(capScaleOut({ from: 2, to: 4, memoryMb: 256, ownerRoomMb: -100, deaRoom: 5 }).to, 2, 'over the limit already: no more');
  t.same(capScaleOut({ from: 4, to: 1, memoryMb: 256, ownerRoomMb: 0, deaRoom: 0 }), { to: 1 }, 'scaling in is never capped');
});
