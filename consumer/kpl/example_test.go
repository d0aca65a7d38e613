package kpl_test

import (
	"errors"
	"fmt"

	"github.com/clickfleet/clickfleet/consumer/kpl"
)

func ExampleDeaggregate() {
	// A producer aggregated three clicks for two users.
	data, err := kpl.Aggregate([]kpl.SubRecord{
		{PartitionKey: "user-1", Data: []byte(`{"page":"/"}`)},
		{PartitionKey: "user-2", Data: []byte(`{"page":"/cart"}`)},
		{PartitionKey: "user-1", Data: []byte(`{"page":"/pay"}`)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The consumer reads it from a shard owning the whole key space, with the
	// range from Shard.HashKeyRange.
	shard, err := kpl.ParseHashRange("0", "340282366920938463463374607431768211455")
	if err != nil {
		fmt.Println(err)
		return
	}
	subs, aggregated, err := kpl.Deaggregate(data, "user-1", shard)
	switch {
	case errors.Is(err, kpl.ErrOutOfShardRange):
		fmt.Println("dropped: a pre-reshard duplicate") // log, count, checkpoint past it
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	fmt.Println("aggregated:", aggregated)
	for _, s := range subs {
		fmt.Printf("%d %s %s\n", s.SubSequence, s.PartitionKey, s.Data)
	}

	// A plain record comes back as itself.
	subs, aggregated, _ = kpl.Deaggregate([]byte("hello"), "user-3", shard)
	fmt.Println("aggregated:", aggregated, subs[0].PartitionKey, string(subs[0].Data))

	// Output:
	// aggregated: true
	// 0 user-1 {"page":"/"}
	// 1 user-2 {"page":"/cart"}
	// 2 user-1 {"page":"/pay"}
	// aggregated: false user-3 hello
}
