package caller

import "testing"

func TestInModule(t *testing.T) {
	t.Parallel()
	for fn, want := range map[string]bool{
		"github.com/syncguard/syncguard.(*Guard[...]).Do":                       true,
		"github.com/syncguard/syncguard.(*Guard[go.shape.struct {}]).Do":        true,
		"github.com/syncguard/syncguard/drivers/redis.(*Driver).Acquire":        true,
		"github.com/syncguard/syncguard/zapobserver.observer.OnEvent":           true,
		"github.com/syncguard/syncguard/internal/caller.Frame":                  true,
		"github.com/syncguard/syncguard/zapobserver_test.TestCaller.func1":      false,
		"github.com/syncguard/syncguard_test.ExampleGuard_Do":                   false,
		"github.com/syncguard/syncguardian.Do":                                  false,
		"main.main":                                                             false,
		"example.com/app/jobs.(*Runner).run":                                    false,
		"net/http.HandlerFunc.ServeHTTP":                                        false,
		"example.com/app.f[github.com/syncguard/syncguard/drivers/memory.Caps]": false,
	} {
		if got := inModule(fn); got != want {
			t.Errorf("inModule(%q) = %v; want %v", fn, got, want)
		}
	}
}
