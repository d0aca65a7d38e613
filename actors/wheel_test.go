package actors

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type wheelItem struct {
	id   int
	node wheelNode
}

func (x *wheelItem) wheelNode() *wheelNode { return &x.node }

// takeIDs takes the items due at nowMs and returns their ids, sorted.
func takeIDs(w *dueWheel[*wheelItem], nowMs int64) []int {
	var ids []int
	w.take(nowMs, func(x *wheelItem) { ids = append(ids, x.id) })
	slices.Sort(ids)
	return ids
}

func TestDueWheel(t *testing.T) {
	const slot, n, start = 100, 8, 1_000_050 // the ring spans 800 ms
	items := func(k int) []*wheelItem {
		out := make([]*wheelItem, k)
		for i := range out {
			out[i] = &wheelItem{id: i}
		}
		return out
	}
	type take struct {
		at   int64
		want []int
	}
	cases := []struct {
		name  string
		setup func(w *dueWheel[*wheelItem], xs []*wheelItem)
		takes []take
	}{
		{"in order, none early", func(w *dueWheel[*wheelItem], xs []*wheelItem) {
			for i, at := range []int64{start + 30, start + 250, start + 120, start + 251, start + 700} {
				w.schedule(xs[i], at)
			}
		}, []take{{start + 29, nil}, {start + 30, []int{0}}, {start + 200, []int{2}}, {start + 250, []int{1}},
			{start + 251, []int{3}}, {start + 699, nil}, {start + 5000, []int{4}}}},
		{"past due and now are taken at the next take", func(w *dueWheel[*wheelItem], xs []*wheelItem) {
			w.schedule(xs[0], 1)
			w.schedule(xs[1], start)
		}, []take{{start, []int{0, 1}}, {start + 1, nil}}},
		{"filed again: only the last time counts", func(w *dueWheel[*wheelItem], xs []*wheelItem) {
			w.schedule(xs[0], start+100)
			w.schedule(xs[0], start+400) // reactivated before its time: due later
			w.schedule(xs[1], start+500)
			w.schedule(xs[1], start+150) // due earlier
		}, []take{{start + 149, nil}, {start + 399, []int{1}}, {start + 400, []int{0}}, {start + 10_000, nil}}},
		{"removed: never taken", func(w *dueWheel[*wheelItem], xs []*wheelItem) {
			w.schedule(xs[0], start+100)
			w.schedule(xs[1], start+100)
			w.schedule(xs[2], start+100)
			w.remove(xs[1])
			w.remove(xs[1])
		}, []take{{start + 100, []int{0, 2}}}},
		{"beyond the ring's span: taken when due, not when its slot comes round", func(w *dueWheel[*wheelItem], xs []*wheelItem) {
			w.schedule(xs[0], start+2_000)
			w.schedule(xs[1], start+20_000)
		}, []take{{start + 790, nil}, {start + 1_999, nil}, {start + 2_000, []int{0}}, {start + 19_000, nil}, {start + 20_001, []int{1}}}},
		{"a jump far beyond the span takes everything due", func(w *dueWheel[*wheelItem], xs []*wheelItem) {
			for i, at := range []int64{start + 10, start + 790, start + 3_000, start + 50_000} {
				w.schedule(xs[i], at)
			}
		}, []take{{start + 40_000, []int{0, 1, 2}}, {start + 49_999, nil}, {start + 50_000, []int{3}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newDueWheel[*wheelItem](slot, n, start)
			xs := items(5)
			c.setup(w, xs)
			for _, tk := range c.takes {
				if got := takeIDs(w, tk.at); !slices.Equal(got, tk.want) {
					t.Fatalf("take at +%d ms: got %v, want %v", tk.at-start, got, tk.want)
				}
			}
			for _, x := range xs {
				if w.filed(x) {
					t.Errorf("item %d is still filed (at +%d ms)", x.id, x.node.at-start)
				}
			}
		})
	}
}

// The wheel against a plain list of due times, over random filing, removal and takes: every take returns
// exactly the filed items due by then.
func TestDueWheelMatchesAList(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const slot, n = 250, 16 // a 4 s ring, items due up to 10 s ahead
	now := int64(1_700_000_000_123)
	w := newDueWheel[*wheelItem](slot, n, now)
	xs := make([]*wheelItem, 300)
	due := map[int]int64{} // the reference: filed items and when they are due
	for i := range xs {
		xs[i] = &wheelItem{id: i}
	}
	for step := range 20_000 {
		x := xs[r.IntN(len(xs))]
		switch op := r.IntN(10); {
		case op < 6:
			at := now - 500 + r.Int64N(10_500)
			w.schedule(x, at)
			due[x.id] = at
		case op < 7:
			w.remove(x)
			delete(due, x.id)
		default:
			now += r.Int64N(600)
			if r.IntN(50) == 0 {
				now += 30_000 // a long pause
			}
			var want []int
			for id, at := range due {
				if at <= now {
					want = append(want, id)
					delete(due, id)
				}
			}
			slices.Sort(want)
			if got := takeIDs(w, now); !slices.Equal(got, want) {
				t.Fatalf("step %d: take at %d: got %v, want %v", step, now, got, want)
			}
		}
		for _, y := range xs {
			if _, ok := due[y.id]; ok != w.filed(y) {
				t.Fatalf("step %d: item %d filed=%v, want %v", step, y.id, w.filed(y), ok)
			}
		}
	}
}
