// The peer of the stages benchmark (bench/stages.py): Benthos v4.27.0, the
// last release under the MIT licence, with only the components the
// benchmark's pipeline uses (file input and output, the subprocess
// processor), so that it builds in seconds rather than minutes.
package main

import (
	"context"

	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
	"github.com/benthosdev/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
