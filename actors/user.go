package actors

import (
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/clickfleet/clickfleet/messages"
	"github.com/clickfleet/clickfleet/session"
)

// userActor runs the per-user logic of one user on one shard. It starts with a hydrate message, applies
// its batches, and hands its effects to the ShardActor on each flush request. It does no I/O.
type userActor struct {
	sh       *shardShared
	u        session.User
	applied  bool
	sessions []messages.Session
	offers   [][]byte
}

func (a *userActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *hydrate:
		a.u = m.user
	case *userBatch:
		a.apply(m.recs)
	case *flushRequest:
		ctx.Send(ctx.Parent(), &userFlushed{id: m.id, flush: a.take()})
	}
}

func (a *userActor) apply(recs []record) {
	rules := &a.sh.f.cfg.Rules
	for i := range recs {
		r := &recs[i]
		o := a.u.Apply(r.pos, r.ev, *rules)
		if !o.Applied {
			continue
		}
		a.applied = true
		cur := a.u.Current
		if n := len(a.sessions); n > 0 && a.sessions[n-1].SessionID == cur.SessionID {
			a.sessions[n-1] = cur
		} else {
			a.sessions = append(a.sessions, cur)
		}
		if o.Offer {
			a.offers = append(a.offers, a.sh.offer(r))
		}
	}
}

// take returns the effects since the last flush and forgets them.
func (a *userActor) take() userEffects {
	e := userEffects{user: a.u.ID, sessions: a.sessions, offers: a.offers}
	if a.applied {
		e.pos = a.u.Applied
		e.fields = a.u.AppendFields(make([]any, 0, 14))
	}
	a.applied, a.sessions, a.offers = false, nil, nil
	return e
}

// offer encodes an offer event, giving it a click id derived from its position when it has none.
func (sh *shardShared) offer(r *record) []byte {
	ev := r.ev
	if ev.ClickID == "" {
		ev.ClickID = messages.DerivedClickID(sh.shard, r.pos.Seq, r.pos.Sub)
	}
	b, err := ev.AppendJSON(make([]byte, 0, 384))
	if err != nil {
		// A decoded event always encodes; should one not, keep its identity rather than lose it.
		b, _ = json.Marshal(map[string]string{"user_id": ev.UserID, "event_name": ev.EventName, "click_id": ev.ClickID, "encode_error": err.Error()})
	}
	return b
}
