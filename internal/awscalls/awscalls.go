// Package awscalls records every AWS API call a process makes — the service, the IAM action the call
// needs and the resources it names — as JSON lines in a file, so that a test can compare what the code
// calls with what an IAM policy allows. It is an SDK middleware (added to an aws.Config's APIOptions) and
// changes nothing about the calls.
//
// It is for tests: clickfleet's production binary does not include it (cmd/clickfleet attaches it only in
// builds with the clickfleet_crashpoints tag, the tag internal/testenv.Binary builds with).
//
// Not every resource is in a request: GetRecords names only a shard iterator. The recorder remembers the
// stream of every iterator GetShardIterator and GetRecords return, so GetRecords is recorded on its stream.
package awscalls

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"

	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
)

// Env is the variable a test build of clickfleet reads: the file the calls are appended to.
const Env = "CLICKFLEET_AWS_CALL_LOG"

// Kinds of resource a call names.
const (
	Stream = "stream" // a Kinesis stream: Name is the stream's name
	// Consumer is a Kinesis stream consumer (enhanced fan-out): Name is "<stream>/consumer/<name>:<creation
	// timestamp>", the part of its ARN after "stream/", with "*" for the timestamp when the request names the
	// consumer by stream and name (DescribeStreamConsumer): IAM evaluates those calls on the consumer's ARN.
	Consumer = "consumer"
	Table    = "table"  // a DynamoDB table: Name is the table's name
	Index    = "index"  // a DynamoDB index: Name is "<table>/index/<index>"
	Bucket   = "bucket" // an S3 bucket: Name is the bucket's name
	Object   = "object" // an S3 object: Name is "<bucket>/<key>"
)

// Resource is one resource a call names.
type Resource struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Call is one recorded API call. Resources is empty for calls on no particular resource (ListStreams,
// CloudWatch GetMetricData), and for a GetRecords whose iterator the recorder never saw.
type Call struct {
	Service   string     `json:"service"`   // the SDK's service id: Kinesis, DynamoDB, S3, CloudWatch
	Operation string     `json:"operation"` // the API operation: GetRecords, HeadBucket …
	Action    string     `json:"action"`    // the IAM action it needs: kinesis:GetRecords, s3:ListBucket …
	Resources []Resource `json:"resources,omitempty"`
	Failed    bool       `json:"failed,omitempty"` // the call returned an error (it was still attempted)
}

// Recorder appends calls to a file. It is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	f     *os.File
	iters map[string]string // shard iterator → stream name, dropped when used
	err   error
}

// Open returns a recorder appending to path (created if missing).
func Open(path string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("AWS call log: %w", err)
	}
	return &Recorder{f: f, iters: map[string]string{}}, nil
}

// Attach adds the recording middleware to every client made from cfg.
func (r *Recorder) Attach(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("clickfleet.awscalls", r.handle), middleware.Before)
	})
}

// Err returns the first error writing the log, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Recorder) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	return r.record(ctx, awsmw.GetServiceID(ctx), awsmw.GetOperationName(ctx), in, next)
}

// record makes the call through next and appends it to the log.
func (r *Recorder) record(ctx context.Context, service, op string, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	c := Call{Service: service, Operation: op, Action: Action(service, op), Resources: r.resources(service, op, in.Parameters)}
	out, md, err := next.HandleInitialize(ctx, in)
	c.Failed = err != nil
	if err == nil && service == "Kinesis" {
		r.learnIterators(in.Parameters, out.Result, c.Resources)
	}
	r.write(c)
	return out, md, err
}

func (r *Recorder) write(c Call) {
	b, err := json.Marshal(c)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		_, err = r.f.Write(append(b, '\n'))
	}
	if err != nil && r.err == nil {
		r.err = err
		fmt.Fprintf(os.Stderr, "%s: %v\n", Env, err)
	}
}

// Action returns the IAM action an operation of a service needs: the operation's name under the
// service's prefix, but for the S3 operations whose permission is named otherwise.
func Action(service, op string) string {
	prefix := strings.ToLower(strings.ReplaceAll(service, " ", ""))
	if service == "S3" {
		switch op {
		case "HeadBucket", "ListObjectsV2", "ListObjects":
			return "s3:ListBucket"
		case "HeadObject":
			return "s3:GetObject"
		}
	}
	return prefix + ":" + op
}

// resources reads the resource names of a request: the fields StreamName, StreamARN, ConsumerARN,
// ConsumerName (but for RegisterStreamConsumer, an action on the stream), TableName (with IndexName),
// RequestItems (batch calls: one table per key), Bucket and Key; a GetRecords' iterator.
func (r *Recorder) resources(service, op string, params any) []Resource {
	v := reflect.ValueOf(params)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	str := func(name string) string {
		f := v.FieldByName(name)
		if f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.String {
			return f.Elem().String()
		}
		return ""
	}
	var out []Resource
	switch service {
	case "Kinesis":
		if c := consumerResource(op, str("ConsumerARN"), str("StreamARN"), str("ConsumerName")); c != "" {
			return []Resource{{Consumer, c}}
		}
		name := str("StreamName")
		if arn := str("StreamARN"); name == "" && arn != "" {
			name = arn[strings.LastIndex(arn, "/")+1:]
		}
		if it := str("ShardIterator"); name == "" && it != "" {
			r.mu.Lock()
			name = r.iters[it]
			delete(r.iters, it)
			r.mu.Unlock()
		}
		if name != "" {
			out = append(out, Resource{Stream, name})
		}
	case "DynamoDB":
		if t := str("TableName"); t != "" {
			if idx := str("IndexName"); idx != "" {
				out = append(out, Resource{Index, t + "/index/" + idx})
			} else {
				out = append(out, Resource{Table, t})
			}
		}
		if items := v.FieldByName("RequestItems"); items.Kind() == reflect.Map {
			var names []string
			for _, k := range items.MapKeys() {
				names = append(names, k.String())
			}
			sort.Strings(names)
			for _, n := range names {
				out = append(out, Resource{Table, n})
			}
		}
	case "S3":
		if b := str("Bucket"); b != "" {
			if k := str("Key"); k != "" {
				out = append(out, Resource{Object, b + "/" + k})
			} else {
				out = append(out, Resource{Bucket, b})
			}
		}
	}
	return out
}

// consumerResource returns the Consumer resource name of a Kinesis request that names a stream consumer
// (by ARN, or by stream ARN and name), or "" for a request on a stream.
func consumerResource(op, consumerARN, streamARN, consumerName string) string {
	if consumerARN != "" {
		if i := strings.Index(consumerARN, ":stream/"); i >= 0 {
			return consumerARN[i+len(":stream/"):]
		}
		return consumerARN
	}
	if consumerName == "" || streamARN == "" || op == "RegisterStreamConsumer" {
		return ""
	}
	return streamARN[strings.LastIndex(streamARN, "/")+1:] + "/consumer/" + consumerName + ":*"
}

// learnIterators remembers the stream of the iterators a GetShardIterator or GetRecords returned.
func (r *Recorder) learnIterators(params, result any, res []Resource) {
	if len(res) == 0 || res[0].Kind != Stream {
		return
	}
	v := reflect.ValueOf(result)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return
	}
	for _, field := range []string{"ShardIterator", "NextShardIterator"} {
		f := v.Elem().FieldByName(field)
		if f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.String {
			r.mu.Lock()
			r.iters[f.Elem().String()] = res[0].Name
			r.mu.Unlock()
		}
	}
}

// Read returns the calls recorded in path, in order.
func Read(path string) ([]Call, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var calls []Call
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var c Call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		calls = append(calls, c)
	}
	return calls, nil
}
