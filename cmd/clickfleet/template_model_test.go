package main

// A small model of deploy/aws/clickfleet.yaml for the tests: the YAML parsed with its CloudFormation tags
// (!Ref, !Sub, !GetAtt …) and the intrinsic functions evaluated for one set of parameter values, with
// made-up physical ids (account 123456789012, region us-east-1) and the ARNs AWS gives the resources the
// tests care about (streams, tables, the bucket, managed policies).

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	templatePath = "../../deploy/aws/clickfleet.yaml"
	fakeAccount  = "123456789012"
	fakeRegion   = "us-east-1"
	fakeStack    = "clickfleet"
)

// cfnTag is a value written with a short-form intrinsic function (!Ref X, !Sub "…"), decoded to its
// long form's name and argument.
type cfnTag struct {
	Fn  string // Ref, Fn::Sub, Fn::GetAtt …
	Arg any
}

// decodeNode turns a YAML node into maps, slices, strings and cfnTags.
func decodeNode(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return decodeNode(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			val, err := decodeNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		var s []any
		for _, c := range n.Content {
			val, err := decodeNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float", "!!bool", "!!null", "!!str", "":
			v = n.Value
			if n.Tag == "!!null" {
				v = nil
			}
		default:
			v = n.Value
		}
	case yaml.AliasNode:
		return nil, fmt.Errorf("line %d: YAML aliases are not CloudFormation", n.Line)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		name := strings.TrimPrefix(n.Tag, "!")
		fn := "Fn::" + name
		if name == "Ref" || name == "Condition" {
			fn = name
		}
		if name == "GetAtt" {
			if s, ok := v.(string); ok {
				v = strings.SplitN(s, ".", 2)
			}
		}
		return cfnTag{Fn: fn, Arg: v}, nil
	}
	return v, nil
}

// template is the parsed template and the parameter values it is evaluated with.
type template struct {
	stack      string // the stack's name (AWS::StackName)
	stackID    string // the uuid ending AWS::StackId
	raw        map[string]any
	resources  map[string]map[string]any
	params     map[string]string
	conditions map[string]bool
}

// loadTemplate parses the template and takes each parameter's default, overridden by params, for the
// stack fakeStack.
func loadTemplate(t testing.TB, params map[string]string) *template {
	t.Helper()
	return loadTemplateAs(t, fakeStack, "0a1b2c3d-0000-1111-2222-333344445555", params)
}

// loadTemplateAs is loadTemplate for a stack of another name and id.
func loadTemplateAs(t testing.TB, stack, stackID string, params map[string]string) *template {
	t.Helper()
	b, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", templatePath, err)
	}
	v, err := decodeNode(&doc)
	if err != nil {
		t.Fatalf("%s: %v", templatePath, err)
	}
	tp := &template{stack: stack, stackID: stackID, raw: v.(map[string]any), resources: map[string]map[string]any{}, params: map[string]string{}, conditions: map[string]bool{}}
	for name, p := range tp.raw["Parameters"].(map[string]any) {
		if d, ok := p.(map[string]any)["Default"]; ok {
			tp.params[name] = fmt.Sprint(d)
		}
	}
	for k, v := range params {
		if _, ok := tp.raw["Parameters"].(map[string]any)[k]; !ok {
			t.Fatalf("the template has no parameter %s", k)
		}
		tp.params[k] = v
	}
	if _, ok := tp.params["Image"]; !ok {
		tp.params["Image"] = "clickfleet:test"
	}
	for name, r := range tp.raw["Resources"].(map[string]any) {
		tp.resources[name] = r.(map[string]any)
	}
	conds := tp.raw["Conditions"].(map[string]any)
	var eval func(string) bool
	eval = func(name string) bool {
		if v, ok := tp.conditions[name]; ok {
			return v
		}
		c, ok := conds[name]
		if !ok {
			t.Fatalf("unknown condition %s", name)
		}
		v := tp.truth(t, c, eval)
		tp.conditions[name] = v
		return v
	}
	for name := range conds {
		eval(name)
	}
	return tp
}

func (tp *template) truth(t testing.TB, c any, cond func(string) bool) bool {
	tag, ok := c.(cfnTag)
	if !ok {
		t.Fatalf("condition %v is not a function", c)
	}
	args, _ := tag.Arg.([]any)
	switch tag.Fn {
	case "Condition":
		return cond(tag.Arg.(string))
	case "Fn::Equals":
		return tp.eval(t, args[0]) == tp.eval(t, args[1])
	case "Fn::Not":
		return !tp.truth(t, args[0], cond)
	case "Fn::And", "Fn::Or":
		and := tag.Fn == "Fn::And"
		for _, a := range args {
			if tp.truth(t, a, cond) != and {
				return !and
			}
		}
		return and
	}
	t.Fatalf("condition function %s not modelled", tag.Fn)
	return false
}

// exists reports whether a resource is created under the parameters (its Condition holds).
func (tp *template) exists(name string) bool {
	r, ok := tp.resources[name]
	if !ok {
		return false
	}
	c, ok := r["Condition"].(string)
	return !ok || tp.conditions[c]
}

// noValue is AWS::NoValue: a property that is left out.
type noValue struct{}

// eval evaluates the intrinsic functions in v; maps and slices are evaluated deeply.
func (tp *template) eval(t testing.TB, v any) any {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, a := range x {
				if strings.HasPrefix(k, "Fn::") || k == "Ref" {
					return tp.eval(t, cfnTag{Fn: k, Arg: a})
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			if ev := tp.eval(t, e); ev != (noValue{}) {
				out[k] = ev
			}
		}
		return out
	case []any:
		var out []any
		for _, e := range x {
			if ev := tp.eval(t, e); ev != (noValue{}) {
				out = append(out, ev)
			}
		}
		return out
	case cfnTag:
		return tp.evalFn(t, x)
	}
	return v
}

func (tp *template) evalFn(t testing.TB, x cfnTag) any {
	t.Helper()
	args, _ := x.Arg.([]any)
	switch x.Fn {
	case "Ref":
		return tp.ref(t, x.Arg.(string))
	case "Fn::GetAtt":
		var parts []string
		switch a := x.Arg.(type) {
		case []string:
			parts = a
		case []any:
			for _, p := range a {
				parts = append(parts, fmt.Sprint(tp.eval(t, p)))
			}
		}
		return tp.getAtt(t, parts[0], parts[1])
	case "Fn::Sub":
		var s string
		vars := map[string]any{}
		switch a := x.Arg.(type) {
		case string:
			s = a
		case []any:
			s = a[0].(string)
			for k, v := range a[1].(map[string]any) {
				vars[k] = tp.eval(t, v)
			}
		}
		return regexp.MustCompile(`\$\{([^}!]+)\}`).ReplaceAllStringFunc(s, func(m string) string {
			name := m[2 : len(m)-1]
			if v, ok := vars[name]; ok {
				return fmt.Sprint(v)
			}
			if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
				return fmt.Sprint(tp.getAtt(t, res, attr))
			}
			return fmt.Sprint(tp.ref(t, name))
		})
	case "Fn::If":
		c := args[0].(string)
		if tp.conditions[c] {
			return tp.eval(t, args[1])
		}
		return tp.eval(t, args[2])
	case "Fn::Select":
		i, _ := strconv.Atoi(fmt.Sprint(tp.eval(t, args[0])))
		list := tp.eval(t, args[1]).([]any)
		return list[i]
	case "Fn::Split":
		var out []any
		for _, p := range strings.Split(fmt.Sprint(tp.eval(t, args[1])), args[0].(string)) {
			out = append(out, p)
		}
		return out
	case "Fn::Join":
		var parts []string
		for _, p := range tp.eval(t, args[1]).([]any) {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, args[0].(string))
	case "Fn::GetAZs":
		return []any{fakeRegion + "a", fakeRegion + "b"}
	case "Fn::Base64":
		return tp.eval(t, x.Arg)
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition":
		return tp.truth(t, x, func(c string) bool { return tp.conditions[c] })
	}
	t.Fatalf("intrinsic function %s not modelled", x.Fn)
	return nil
}

func (tp *template) ref(t testing.TB, name string) any {
	t.Helper()
	switch name {
	case "AWS::AccountId":
		return fakeAccount
	case "AWS::Region":
		return fakeRegion
	case "AWS::Partition":
		return "aws"
	case "AWS::StackName":
		return tp.stack
	case "AWS::StackId":
		return "arn:aws:cloudformation:" + fakeRegion + ":" + fakeAccount + ":stack/" + tp.stack + "/" + tp.stackID
	case "AWS::NoValue":
		return noValue{}
	}
	if v, ok := tp.params[name]; ok {
		return v
	}
	r, ok := tp.resources[name]
	if !ok {
		t.Fatalf("!Ref %s: no such parameter or resource", name)
	}
	props, _ := r["Properties"].(map[string]any)
	physical := func(prop string) any {
		if v := tp.eval(t, props[prop]); v != nil && v != (noValue{}) {
			return v
		}
		// CloudFormation's own name: the stack's, the logical id's and a random part, lower case.
		return strings.ToLower(tp.stack + "-" + name + "-" + tp.stackID[:12])
	}
	switch r["Type"] {
	case "AWS::Kinesis::Stream":
		return physical("Name")
	case "AWS::DynamoDB::Table":
		return physical("TableName")
	case "AWS::S3::Bucket":
		return physical("BucketName")
	case "AWS::IAM::ManagedPolicy":
		return "arn:aws:iam::" + fakeAccount + ":policy/" + name
	}
	return name
}

func (tp *template) getAtt(t testing.TB, res, attr string) any {
	t.Helper()
	r, ok := tp.resources[res]
	if !ok {
		t.Fatalf("!GetAtt %s.%s: no such resource", res, attr)
	}
	if attr == "Arn" {
		switch r["Type"] {
		case "AWS::Kinesis::Stream":
			return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", fakeRegion, fakeAccount, tp.ref(t, res))
		case "AWS::DynamoDB::Table":
			return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", fakeRegion, fakeAccount, tp.ref(t, res))
		case "AWS::S3::Bucket":
			return fmt.Sprintf("arn:aws:s3:::%s", tp.ref(t, res))
		}
	}
	if r["Type"] == "AWS::Kinesis::StreamConsumer" && attr == "ConsumerName" {
		return tp.props(t, res)["ConsumerName"]
	}
	return "fake:" + res + "." + attr
}

// name returns the physical name of a stream, table or bucket of the template (what !Ref gives).
func (tp *template) name(t testing.TB, resource string) string {
	t.Helper()
	return fmt.Sprint(tp.ref(t, resource))
}

// props returns a resource's evaluated properties.
func (tp *template) props(t testing.TB, name string) map[string]any {
	t.Helper()
	p, _ := tp.eval(t, tp.resources[name]["Properties"]).(map[string]any)
	return p
}

// resourcesOfType returns the names of the resources of a type that exist, sorted.
func (tp *template) resourcesOfType(typ string) []string {
	var out []string
	for name, r := range tp.resources {
		if r["Type"] == typ && tp.exists(name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// statement is one Allow statement of a policy.
type statement struct {
	Sid       string
	Actions   []string
	Resources []string
}

// strings returns a string or a list of strings as a list.
func asStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

// policyStatements returns the Allow statements of a policy document.
func policyStatements(t testing.TB, doc any, where string) []statement {
	t.Helper()
	var out []statement
	for _, s := range doc.(map[string]any)["Statement"].([]any) {
		m := s.(map[string]any)
		if m["Effect"] != "Allow" {
			t.Fatalf("%s: statement %v is not an Allow (the test models only those)", where, m["Sid"])
		}
		if _, ok := m["NotAction"]; ok {
			t.Fatalf("%s: NotAction is not least privilege", where)
		}
		out = append(out, statement{Sid: fmt.Sprint(m["Sid"]), Actions: asStrings(m["Action"]), Resources: asStrings(m["Resource"])})
	}
	return out
}

// roleStatements returns every Allow statement of a role's inline and managed (template-made) policies;
// AWS-managed policies are returned by ARN in awsManaged.
func (tp *template) roleStatements(t testing.TB, role string) (stmts []statement, awsManaged []string) {
	t.Helper()
	p := tp.props(t, role)
	for _, arn := range asStrings(p["ManagedPolicyArns"]) {
		name, ok := strings.CutPrefix(arn, "arn:aws:iam::"+fakeAccount+":policy/")
		if !ok {
			awsManaged = append(awsManaged, arn)
			continue
		}
		stmts = append(stmts, tp.policyStatements(t, name)...)
	}
	if pols, ok := p["Policies"].([]any); ok {
		for _, pol := range pols {
			m := pol.(map[string]any)
			stmts = append(stmts, policyStatements(t, m["PolicyDocument"], role+"/"+fmt.Sprint(m["PolicyName"]))...)
		}
	}
	return stmts, awsManaged
}

// policyStatements returns the statements of a template-made managed policy.
func (tp *template) policyStatements(t testing.TB, name string) []statement {
	t.Helper()
	if tp.resources[name]["Type"] != "AWS::IAM::ManagedPolicy" {
		t.Fatalf("%s is not a managed policy of the template", name)
	}
	return policyStatements(t, tp.props(t, name)["PolicyDocument"], name)
}

// container is one ECS container definition with the task definition it belongs to.
type container struct {
	TaskDefinition string
	Name           string
	Command        []string
	Environment    map[string]string
	Secrets        map[string]string
	StopTimeout    int
	HealthCheck    []string
	Port           int
	TaskRole       string // the logical id of the task role, "" for none
}

// containers returns every container of the task definitions that exist.
func (tp *template) containers(t testing.TB) []container {
	t.Helper()
	var out []container
	for _, td := range tp.resourcesOfType("AWS::ECS::TaskDefinition") {
		raw := tp.resources[td]["Properties"].(map[string]any)
		role := ""
		if tag, ok := raw["TaskRoleArn"].(cfnTag); ok {
			role = fmt.Sprint(tag.Arg.([]string)[0])
		}
		p := tp.props(t, td)
		for _, cd := range p["ContainerDefinitions"].([]any) {
			m := cd.(map[string]any)
			c := container{TaskDefinition: td, Name: fmt.Sprint(m["Name"]), Command: asStrings(m["Command"]),
				Environment: map[string]string{}, Secrets: map[string]string{}, TaskRole: role}
			c.StopTimeout, _ = strconv.Atoi(fmt.Sprint(m["StopTimeout"]))
			for _, e := range asSlice(m["Environment"]) {
				kv := e.(map[string]any)
				c.Environment[fmt.Sprint(kv["Name"])] = fmt.Sprint(kv["Value"])
			}
			for _, e := range asSlice(m["Secrets"]) {
				kv := e.(map[string]any)
				c.Secrets[fmt.Sprint(kv["Name"])] = fmt.Sprint(kv["ValueFrom"])
			}
			if hc, ok := m["HealthCheck"].(map[string]any); ok {
				c.HealthCheck = asStrings(hc["Command"])
			}
			for _, pm := range asSlice(m["PortMappings"]) {
				c.Port, _ = strconv.Atoi(fmt.Sprint(pm.(map[string]any)["ContainerPort"]))
			}
			out = append(out, c)
		}
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// ruleFailures returns the AssertDescription of every Rules assertion that fails under the parameters
// (CloudFormation refuses to create or update the stack then), in rule order.
func (tp *template) ruleFailures(t testing.TB) []string {
	t.Helper()
	rules, _ := tp.raw["Rules"].(map[string]any)
	names := make([]string, 0, len(rules))
	for name := range rules {
		names = append(names, name)
	}
	sort.Strings(names)
	cond := func(c string) bool { return tp.conditions[c] }
	var out []string
	for _, name := range names {
		r := rules[name].(map[string]any)
		if c, ok := r["RuleCondition"]; ok && !tp.truth(t, c, cond) {
			continue
		}
		for _, a := range asSlice(r["Assertions"]) {
			m := a.(map[string]any)
			if !tp.truth(t, m["Assert"], cond) {
				out = append(out, name+": "+fmt.Sprint(m["AssertDescription"]))
			}
		}
	}
	return out
}

// outputs returns the evaluated values of the outputs that exist under the parameters.
func (tp *template) outputs(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, o := range tp.raw["Outputs"].(map[string]any) {
		m := o.(map[string]any)
		if c, ok := m["Condition"].(string); ok && !tp.conditions[c] {
			continue
		}
		out[name] = fmt.Sprint(tp.eval(t, m["Value"]))
	}
	return out
}
