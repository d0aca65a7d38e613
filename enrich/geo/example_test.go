package geo_test

import (
	"context"
	"fmt"

	"github.com/clickfleet/clickfleet/enrich/geo"
)

// An actor's use: Cached on its own goroutine; on a miss, Resolve, whose callback only posts the answer
// back (here to a channel standing in for the actor's mailbox).
func ExampleResolver_Resolve() {
	var t testingT
	db := openTestMMDB(&t, geo.SchemaGeoIP2)
	r, err := geo.NewResolver(geo.Config{Provider: db}) // plus Redis: rdb in production
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	mailbox := make(chan geo.Location, 1)
	ip := "81.2.69.142"
	if loc, ok := r.Cached(ip); ok {
		mailbox <- loc
	} else {
		r.Resolve(ip, func(loc geo.Location) { mailbox <- loc }) // returns at once
	}
	loc := <-mailbox
	fmt.Println(loc.Country, loc.Region, loc.City, loc.Status)

	loc, _ = r.Cached(ip) // now answered from memory
	fmt.Println(loc.City)
	loc, _ = r.Lookup(context.Background(), "192.168.1.10")
	fmt.Println(loc.Status)
	// Output:
	// GB England London found
	// London
	// unknown
}
