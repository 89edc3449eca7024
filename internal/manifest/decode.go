package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// Error is a problem with one document of a manifest source. It names the source
// (a file path, or "<stdin>"), the 1-based document index, the object when known,
// the field at fault, and what to do about it.
type Error struct {
	Source   string
	Document int    // 1-based index of the document within Source; 0 when the whole source is at fault
	Line     int    // 1-based line in Source where the document (or the syntax error) is; 0 if unknown
	Object   string // "Kind namespace/name" or "Kind name" when known
	Field    string // e.g. "metadata.labels", empty when not about one field
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Document > 0 {
		fmt.Fprintf(&b, ": document %d", e.Document)
	}
	if e.Object != "" {
		fmt.Fprintf(&b, " (%s)", e.Object)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %s", e.Field)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Document is one object read from a manifest source.
type Document struct {
	Source string
	Index  int // 1-based
	Line   int // first line of the document in Source
	Object Object
	// Raw is the object as written, in JSON: what `apply` records as last applied.
	Raw []byte
}

// Decode reads every document of a YAML stream (documents separated by "---") or a
// JSON stream (one or more objects, or a v1 List) into typed objects. It stops at
// the first bad document; callers that write must write nothing when it fails.
func Decode(source string, r io.Reader) ([]Document, error) {
	return decode(source, r, true)
}

// DecodeAdmitted is Decode for what a store wrote after admitting it (see
// Admit): it does not check fields against the CRD's schema again, which
// spares reading the CRD.
func DecodeAdmitted(source string, r io.Reader) ([]Document, error) {
	return decode(source, r, false)
}

func decode(source string, r io.Reader, checkSchema bool) ([]Document, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &Error{Source: source, Err: fmt.Errorf("reading: %w", err)}
	}
	raws, err := splitDocuments(source, data)
	if err != nil {
		return nil, err
	}
	var docs []Document
	for _, raw := range raws {
		raw.checkSchema = checkSchema
		objs, err := decodeDocument(raw)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			docs = append(docs, Document{Source: source, Index: raw.index, Line: raw.line, Object: obj.object, Raw: obj.raw})
		}
	}
	return docs, nil
}

// rawDocument is one document's JSON, with where it came from.
type rawDocument struct {
	source string
	index  int
	line   int
	json   []byte
	// checkSchema: refuse fields the kind's CRD does not declare.
	checkSchema bool
}

func (r rawDocument) errorf(object, field string, format string, args ...any) *Error {
	return &Error{Source: r.source, Document: r.index, Line: r.line, Object: object, Field: field, Err: fmt.Errorf(format, args...)}
}

func splitDocuments(source string, data []byte) ([]rawDocument, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if bytes.HasPrefix(trimmed, []byte("{")) || bytes.HasPrefix(trimmed, []byte("[")) {
		return splitJSON(source, data)
	}
	return splitYAML(source, data)
}

func splitJSON(source string, data []byte) ([]rawDocument, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []rawDocument
	for i := 1; ; i++ {
		var raw json.RawMessage
		offset := dec.InputOffset()
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return docs, nil
		} else if err != nil {
			line := lineAt(data, offset)
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				line = lineAt(data, syn.Offset)
			}
			return nil, &Error{Source: source, Document: i, Line: line, Err: fmt.Errorf("malformed JSON: %w; fix the syntax", err)}
		}
		docs = append(docs, rawDocument{source: source, index: i, line: lineAt(data, offset+1), json: raw})
	}
}

func lineAt(data []byte, offset int64) int {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// splitYAML cuts data into its documents at "---" lines. A document is a
// range of data, not a copy: the directory store decodes every file at
// start-up, one document each, and copying it line by line was most of
// what that allocated.
func splitYAML(source string, data []byte) ([]rawDocument, error) {
	if bytes.IndexByte(data, '\r') >= 0 {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")) // Windows line ends
	}
	var docs []rawDocument
	index, startLine, lineNo := 1, 1, 0
	flush := func(doc []byte) error {
		defer func() { index++; startLine = lineNo + 1 }()
		if isBlankYAML(doc) {
			return nil
		}
		js, err := sigsyaml.YAMLToJSON(doc)
		if err != nil {
			line := startLine
			msg := err.Error()
			if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
				n, _ := strconv.Atoi(m[1])
				line = startLine + n - 1
				msg = yamlLineRE.ReplaceAllString(msg, fmt.Sprintf("line %d", line))
			}
			return &Error{Source: source, Document: index, Line: line, Err: fmt.Errorf("malformed YAML: %s; fix the syntax", strings.TrimPrefix(msg, "error converting YAML to JSON: "))}
		}
		if bytes.Equal(js, []byte("null")) {
			return nil
		}
		docs = append(docs, rawDocument{source: source, index: index, line: startLine, json: js})
		return nil
	}
	docStart := 0
	for off := 0; off < len(data); {
		line, next := nextLine(data, off)
		lineNo++
		if isSeparator(line) {
			if err := flush(data[docStart:off]); err != nil {
				return nil, err
			}
			docStart = next
		}
		off = next
	}
	if err := flush(data[docStart:]); err != nil {
		return nil, err
	}
	return docs, nil
}

// nextLine returns the line of data that starts at off, without its "\n",
// and the offset of the line after it.
func nextLine(data []byte, off int) (line []byte, next int) {
	if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
		return data[off : off+i], off + i + 1
	}
	return data[off:], len(data)
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimSpace(line[3:])
	return len(rest) == 0 || rest[0] == '#'
}

func isBlankYAML(b []byte) bool {
	for off := 0; off < len(b); {
		line, next := nextLine(b, off)
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			return false
		}
		off = next
	}
	return true
}

// header is the part of every object that says what it is.
type header struct {
	APIVersion *string         `json:"apiVersion"`
	Kind       *string         `json:"kind"`
	Items      json.RawMessage `json:"items"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// decoded is one object with the JSON it was read from.
type decoded struct {
	object Object
	raw    []byte
}

func decodeDocument(raw rawDocument) ([]decoded, error) {
	var h header
	if err := json.Unmarshal(raw.json, &h); err != nil {
		return nil, raw.errorf("", "", "not an object: %v; each document must be a mapping with apiVersion, kind and metadata", err)
	}
	if h.APIVersion == nil || *h.APIVersion == "" {
		return nil, raw.errorf("", "apiVersion", "missing; set it, e.g. apiVersion: v1")
	}
	if h.Kind == nil || *h.Kind == "" {
		return nil, raw.errorf("", "kind", "missing; set it, e.g. kind: Service")
	}
	gv, err := schema.ParseGroupVersion(*h.APIVersion)
	if err != nil {
		return nil, raw.errorf("", "apiVersion", "%q is not a valid apiVersion (group/version)", *h.APIVersion)
	}
	if gv.Group == "" && gv.Version == "v1" && *h.Kind == "List" {
		return decodeList(raw, h.Items)
	}
	obj, err := decodeObject(raw, gv.WithKind(*h.Kind), h.Metadata.Namespace, h.Metadata.Name)
	if err != nil {
		return nil, err
	}
	return []decoded{{object: obj, raw: raw.json}}, nil
}

func decodeList(raw rawDocument, items json.RawMessage) ([]decoded, error) {
	var list []json.RawMessage
	if len(items) > 0 {
		if err := json.Unmarshal(items, &list); err != nil {
			return nil, raw.errorf("List", "items", "must be a list of objects: %v", err)
		}
	}
	var out []decoded
	for i, item := range list {
		inner := raw
		inner.json = item
		objs, err := decodeDocument(inner)
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Field = strings.TrimSuffix(fmt.Sprintf("items[%d].%s", i, e.Field), ".")
			}
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func describe(k *Kind, namespace, name string) string {
	if k.Namespaced && namespace != "" {
		return fmt.Sprintf("%s %s/%s", k.Kind, namespace, name)
	}
	return fmt.Sprintf("%s %s", k.Kind, name)
}

func decodeObject(raw rawDocument, gvk schema.GroupVersionKind, namespace, name string) (Object, error) {
	k, ok := ForGVK(gvk)
	if !ok {
		return nil, unknownKindError(raw, gvk)
	}
	what := describe(k, namespace, name)
	obj := k.New()
	strict, err := sigsjson.UnmarshalStrict(raw.json, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		field, msg := jsonErrorField(err)
		if msg != "unknown field" && msg != "duplicate field" {
			if serr := schemaError(raw, k, gvk.Version, what); serr != nil {
				return nil, serr
			}
		}
		return nil, raw.errorf(what, field, "%s", msg)
	}
	if len(strict) > 0 {
		field, msg := jsonErrorField(strict[0])
		return nil, raw.errorf(what, field, "%s; remove it or check its spelling", msg)
	}
	if err := checkProtoSpec(raw, obj, k, gvk.Version, what); err != nil {
		return nil, err
	}
	if raw.checkSchema {
		if err := checkSchemaFields(raw, k, gvk.Version, what); err != nil {
			return nil, err
		}
	}
	// Older versions are stored as the current one (their schemas match).
	obj.GetObjectKind().SetGroupVersionKind(k.GroupVersionKind())
	if !k.Namespaced {
		obj.SetNamespace("")
	}
	if err := ValidateMetadata(k, obj); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, raw.errorf(what, fe.Field, "%s", fe.Msg)
		}
		return nil, raw.errorf(what, "", "%v", err)
	}
	return obj, nil
}

// schemaError is, for a custom resource its Go type could not decode, what
// its CRD's schema says is wrong — the field and the value it wants (a
// number where a string was written, an enum's values), as an API server
// would answer — or nil when the schema finds nothing. The Go decoders'
// own errors name neither for the Istio kinds ("invalid character 'l'
// looking for beginning of value", an enum's Go name).
func schemaError(raw rawDocument, k *Kind, version, what string) error {
	s, err := SchemaFor(k, version)
	if err != nil || s == nil {
		return nil
	}
	var m map[string]any
	if err := utiljson.Unmarshal(raw.json, &m); err != nil {
		return nil
	}
	errs, err := s.Validate(context.Background(), Create, m, nil)
	if err != nil {
		return nil
	}
	// The fields at fault; not CEL's note that it skipped rules on an
	// invalid object.
	errs = errs.Filter(func(e error) bool {
		var fe *field.Error
		return errors.As(e, &fe) && (fe.Field == "" || fe.Field == "<nil>") // a nil field.Path prints so
	})
	if len(errs) == 0 {
		return nil
	}
	body := func(e *field.Error) string {
		return strings.Replace(e.ErrorBody(), e.Field+" in body ", "", 1) // the field is named once
	}
	msg := body(errs[0])
	for _, e := range errs[1:] {
		msg += fmt.Sprintf("; field %s: %s", e.Field, body(e))
	}
	return raw.errorf(what, errs[0].Field, "%s", msg)
}

func unknownKindError(raw rawDocument, gvk schema.GroupVersionKind) error {
	var sameKind []string
	for _, k := range All {
		if k.Kind == gvk.Kind {
			sameKind = append(sameKind, k.APIVersion())
			for _, v := range k.OtherVersions {
				sameKind = append(sameKind, schema.GroupVersion{Group: k.Group, Version: v}.String())
			}
		}
	}
	if len(sameKind) > 0 {
		return raw.errorf(gvk.Kind, "apiVersion", "%q is not a version meshway reads for kind %s; use %s", gvk.GroupVersion().String(), gvk.Kind, strings.Join(sameKind, " or "))
	}
	known := make([]string, 0, len(All))
	for _, k := range All {
		known = append(known, k.Kind)
	}
	return raw.errorf("", "kind", "unknown kind %q (apiVersion %s); meshway reads: %s", gvk.Kind, gvk.GroupVersion().String(), strings.Join(known, ", "))
}

var (
	fieldInMsg   = regexp.MustCompile(`unknown field "([^"]+)"|duplicate field "([^"]+)"`)
	goStructPath = regexp.MustCompile(`Go struct field [A-Za-z0-9_]+\.([A-Za-z0-9_.\[\]]+) of type`)
)

// jsonErrorField pulls the field path out of an encoding/json-style error so the
// message can name it, and returns the rest as the message.
func jsonErrorField(err error) (field, msg string) {
	msg = err.Error()
	if m := fieldInMsg.FindStringSubmatch(msg); m != nil {
		field = m[1] + m[2]
		if m[1] != "" {
			return field, "unknown field"
		}
		return field, "duplicate field"
	} else if m := goStructPath.FindStringSubmatch(msg); m != nil {
		field = m[1]
	}
	msg = strings.TrimPrefix(msg, "json: ")
	return field, msg
}

// specMessage is satisfied by the Istio types, whose spec is a protobuf message.
// Their JSON decoding ignores unknown fields; check them strictly here so a typo
// in an Istio spec is an error, as it is for every other kind.
func checkProtoSpec(raw rawDocument, obj Object, k *Kind, version, what string) error {
	var envelope struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw.json, &envelope); err != nil || len(envelope.Spec) == 0 {
		return nil
	}
	msg, ok := protoSpecOf(obj)
	if !ok {
		return nil
	}
	fresh := msg.ProtoReflect().New().Interface()
	if err := (protojson.UnmarshalOptions{}).Unmarshal(envelope.Spec, fresh); err != nil {
		text := strings.TrimPrefix(err.Error(), "proto: ")
		if m := fieldInMsg.FindStringSubmatch(text); m != nil {
			return raw.errorf(what, "spec."+m[1]+m[2], "unknown field; remove it or check its spelling")
		}
		if serr := schemaError(raw, k, version, what); serr != nil {
			return serr
		}
		return raw.errorf(what, "spec", "%s", text)
	}
	return nil
}

func protoSpecOf(obj Object) (proto.Message, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	spec := v.Elem().FieldByName("Spec")
	if !spec.IsValid() || !spec.CanAddr() {
		return nil, false
	}
	m, ok := spec.Addr().Interface().(proto.Message)
	return m, ok
}

// checkSchemaFields refuses a field the Go type has but the CRD's schema at the
// written version does not declare — one of the Gateway API's experimental
// fields against its standard-channel CRD, say. An API server prunes such a
// field; kubectl apply, whose field validation is strict by default, is
// refused, and so is this.
func checkSchemaFields(raw rawDocument, k *Kind, version, what string) error {
	s, err := SchemaFor(k, version)
	if err != nil || s == nil {
		return nil // a built-in kind; a version the CRD does not serve is left to the store
	}
	var m map[string]any
	if err := utiljson.Unmarshal(raw.json, &m); err != nil {
		return nil // decoded strictly above; cannot happen
	}
	if unknown := s.UnknownFields(m); len(unknown) > 0 {
		return raw.errorf(what, unknown[0], "unknown field: the %s CRD (%s) does not declare it; remove it or check its spelling", k.Kind, s.Origin)
	}
	return nil
}
