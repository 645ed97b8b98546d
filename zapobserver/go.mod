module github.com/syncguard/syncguard/zapobserver

go 1.25.0

replace github.com/syncguard/syncguard => ../

require (
	github.com/google/go-cmp v0.7.0
	github.com/syncguard/syncguard v0.0.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
)

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)
