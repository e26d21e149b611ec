// Command kstatus prints what the kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status,
// the code Flux's health checks run) concludes about Kubernetes objects.
//
// It reads JSON on stdin: one object, or a list as `kubectl get -o json` prints it. It writes a
// JSON array on stdout, one verdict per object in input order:
//
//	kubectl get webhooks -n acme -o json | kstatus
//	[{"kind":"Webhook","namespace":"acme","name":"crm","status":"Current","message":"Resource is Ready"}]
//
// The tests compare these verdicts with the status model documented in the README.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
	// The kstatus conditions the library derives (e.g. Reconciling for a generation not yet observed).
	Conditions []status.Condition `json:"conditions,omitempty"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	// apimachinery's decoder keeps integers int64, as the API machinery (and kstatus) expects.
	var doc map[string]interface{}
	if err := utiljson.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("reading JSON from stdin: %w", err)
	}
	objects := []map[string]interface{}{doc}
	if items, isList := doc["items"].([]interface{}); isList {
		objects = objects[:0]
		for i, item := range items {
			object, ok := item.(map[string]interface{})
			if !ok {
				return fmt.Errorf("items[%d] is not an object", i)
			}
			objects = append(objects, object)
		}
	}
	verdicts := make([]verdict, 0, len(objects))
	for _, object := range objects {
		u := &unstructured.Unstructured{Object: object}
		result, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		verdicts = append(verdicts, verdict{
			Kind:       u.GetKind(),
			Namespace:  u.GetNamespace(),
			Name:       u.GetName(),
			Status:     string(result.Status),
			Message:    result.Message,
			Conditions: result.Conditions,
		})
	}
	encoder := json.NewEncoder(out)
	return encoder.Encode(verdicts)
}
