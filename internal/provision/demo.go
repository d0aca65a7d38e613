package provision

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/clickfleet/clickfleet/enrich/names"
)

// errDemoCount is LoadDemo's error for a count below 1.
var errDemoCount = errors.New("provision: invalid demo customer count")

// Demo customers: first and last names combined deterministically from the id.
var (
	demoFirst = []string{"Semyon", "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances", "Ken",
		"Radia", "Edsger", "Hedy", "Donald", "Katherine", "John", "Sophie", "Tim", "Mary", "Guido", "Anita", "Bjarne", "Lynn", "Niklaus"}
	demoLast = []string{"Ryan", "Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Ritchie", "Allen", "Thompson",
		"Perlman", "Dijkstra", "Lamarr", "Knuth", "Johnson", "McCarthy", "Wilson", "Berners-Lee", "Kenneth", "van Rossum", "Borg",
		"Stroustrup", "Conway", "Wirth", "Goldberg", "Kay", "Sutherland"}
)

// DemoCustomers returns n customers with ids "1".."n" (the click generator's POC user ids), names and prices
// (0.05 to 2.04 per click), the same for the same n.
func DemoCustomers(n int) []names.Customer {
	out := make([]names.Customer, n)
	for i := range out {
		id := i + 1
		out[i] = names.Customer{
			ID:            strconv.Itoa(id),
			Name:          demoFirst[(id*7)%len(demoFirst)] + " " + demoLast[(id*11+id/len(demoFirst))%len(demoLast)],
			PricePerClick: fmt.Sprintf("%d.%02d", (5+(id*37)%200)/100, (5+(id*37)%200)%100),
		}
	}
	return out
}

// LoadDemo inserts or updates the n DemoCustomers in the customers table (EnsureCustomersSchema
// must have run). Rows that already hold the same values are left alone, so it fires no trigger for them.
func LoadDemo(ctx context.Context, db Execer, n int) error {
	if n < 1 {
		return fmt.Errorf("%w: demo customers must be at least 1, got %d", errDemoCount, n)
	}
	cs := DemoCustomers(n)
	ids, names, prices := make([]string, n), make([]string, n), make([]string, n)
	for i, c := range cs {
		ids[i], names[i], prices[i] = c.ID, c.Name, c.PricePerClick
	}
	_, err := db.Exec(ctx, `
INSERT INTO customers (customer_id, name, price_per_click)
SELECT id, name, price::numeric FROM unnest($1::text[], $2::text[], $3::text[]) AS t(id, name, price)
ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name, price_per_click = EXCLUDED.price_per_click, updated_at = now()
WHERE customers.name IS DISTINCT FROM EXCLUDED.name OR customers.price_per_click IS DISTINCT FROM EXCLUDED.price_per_click`,
		ids, names, prices)
	if err != nil {
		return fmt.Errorf("load %d demo customers: %w", n, err)
	}
	return nil
}
