package config_test

import (
	"fmt"

	_ "github.com/dogpile-go/dogpile/backends/memory"
	_ "github.com/dogpile-go/dogpile/backends/null"
	"github.com/dogpile-go/dogpile/config"
	"github.com/dogpile-go/dogpile/region"
)

// One document for every environment: DOGPILE_PROFILE=dev (here given in Options.Env; a program
// leaves Env nil to read its own environment) merges the dev profile over the regions.
func ExampleProfile() {
	d, err := config.Parse([]byte(`
regions:
  users:
    backend: memory://
    expiration: 10m
profiles:
  dev:
    regions:
      users: {backend: "null://"}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, profile := range []string{"", "dev", "prod"} {
		users := region.New("users")
		err := config.Options{Env: []string{"DOGPILE_PROFILE=" + profile}}.Configure(d, users)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%q: %T\n", profile, users.Backend())
		_ = users.Close()
	}
	// Output:
	// "": *memory.Backend
	// "dev": *null.Backend
	// config: profile "prod" (from DOGPILE_PROFILE) is not in the document; its profiles: dev
}
