package actors

// dueWheel files items by the processing time (Unix ms) at which they are due, so that a flush takes the
// due ones without visiting the others (with a million users, nearly all have a session row trigger
// ahead, and a flush every second used to look at each of them): a timing wheel, a ring of slots
// slotMs wide starting at the slot of the last take. An item due beyond the ring's span waits in its
// farthest slot and is filed again when that slot has passed. Filing, filing again and removing cost
// O(1); take visits the slots passed since the last take and the items in them. Not safe for concurrent
// use: the ShardActor's (and the benchmark's map baseline's).
type dueWheel[T wheeled] struct {
	slotMs int64
	slots  [][]T
	cur    int   // the current slot: the one holding curMs
	curMs  int64 // the start of the current slot, a multiple of slotMs
}

// wheeled is an item of a dueWheel: a pointer to a struct holding its wheelNode.
type wheeled interface {
	comparable
	wheelNode() *wheelNode
}

// wheelNode is an item's place in a dueWheel; the zero value is not filed.
type wheelNode struct {
	at   int64 // when it is due (Unix ms)
	slot int32 // 1 + the index of its slot; 0 when not filed
	idx  int32 // its index in the slot
}

// Default shape of the shards' wheels: 512 slots of 250 ms span 128 s, beyond the default session row
// triggers (60 s update interval, 15 s idle close).
const (
	wheelSlotMs = 250
	wheelSlots  = 512
)

// newDueWheel returns an empty wheel of n slots of slotMs whose current slot holds nowMs.
func newDueWheel[T wheeled](slotMs int64, n int, nowMs int64) *dueWheel[T] {
	return &dueWheel[T]{slotMs: slotMs, slots: make([][]T, n), curMs: nowMs - mod(nowMs, slotMs)}
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// schedule files x as due at atMs, instead of where it was filed; an item due now or earlier goes in the
// current slot, taken at the next take.
func (w *dueWheel[T]) schedule(x T, atMs int64) {
	w.remove(x)
	ahead := int64(0)
	if atMs >= w.curMs {
		ahead = min((atMs-w.curMs)/w.slotMs, int64(len(w.slots)-1))
	}
	i := (w.cur + int(ahead)) % len(w.slots)
	n := x.wheelNode()
	*n = wheelNode{at: atMs, slot: int32(i + 1), idx: int32(len(w.slots[i]))}
	w.slots[i] = append(w.slots[i], x)
}

// remove takes x out of the wheel, if it is filed.
func (w *dueWheel[T]) remove(x T) {
	n := x.wheelNode()
	if n.slot == 0 {
		return
	}
	s := w.slots[n.slot-1]
	last := s[len(s)-1]
	s[n.idx] = last
	last.wheelNode().idx = n.idx
	var zero T
	s[len(s)-1] = zero
	w.slots[n.slot-1] = s[:len(s)-1]
	n.slot = 0
}

// filed reports whether x is in the wheel.
func (w *dueWheel[T]) filed(x T) bool { return x.wheelNode().slot != 0 }

// take removes the items due at or before nowMs and calls fn with each; fn must not change the wheel.
// The wheel then turns to the slot holding nowMs.
func (w *dueWheel[T]) take(nowMs int64, fn func(T)) {
	var later []T // items in passed slots that are not due: filed beyond the span
	for visited := 0; w.curMs+w.slotMs <= nowMs; visited++ {
		if visited == len(w.slots) { // every slot visited: jump to now
			w.curMs = nowMs - mod(nowMs, w.slotMs)
			break
		}
		later = w.takeSlot(w.cur, nowMs, fn, later)
		w.cur = (w.cur + 1) % len(w.slots)
		w.curMs += w.slotMs
	}
	kept := w.takeSlot(w.cur, nowMs, fn, nil)
	for i, x := range kept { // not due yet: stays in the current slot
		n := x.wheelNode()
		n.slot, n.idx = int32(w.cur+1), int32(len(w.slots[w.cur]))
		w.slots[w.cur] = append(w.slots[w.cur], kept[i])
	}
	for _, x := range later {
		w.schedule(x, x.wheelNode().at)
	}
}

// takeSlot empties slot i: fn gets its items due at or before nowMs, the others are appended to keep
// (unfiled).
func (w *dueWheel[T]) takeSlot(i int, nowMs int64, fn func(T), keep []T) []T {
	s := w.slots[i]
	for _, x := range s {
		n := x.wheelNode()
		n.slot = 0
		if n.at <= nowMs {
			fn(x)
		} else {
			keep = append(keep, x)
		}
	}
	clear(s)
	if cap(s) > 1024 {
		s = nil // a burst's array is not kept
	}
	w.slots[i] = s[:0]
	return keep
}
