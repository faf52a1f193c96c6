// compose-check loads a compose file with compose-go, the library Docker Compose loads files
// with: variable interpolation, the Compose Specification schema, merge keys and extensions,
// and the project model's own checks (services, dependencies, secrets, networks, volumes). It
// prints the loaded project as JSON, or the loader's error and exits 1. The environment is the
// process's own. Built and run by tests/integration/test_deploy_files.py
// (iopcare.devtools.compose_schema.ensure_compose_checker); no container engine is needed.
//
//	compose-check deploy/compose.yaml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		[]string{os.Args[1]}, cli.WithOsEnv, cli.WithName("iopcare"),
	)
	if err == nil {
		var project *types.Project
		project, err = options.LoadProject(context.Background())
		if err == nil {
			var out []byte
			out, err = project.MarshalJSON()
			if err == nil {
				_, err = os.Stdout.Write(out)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
