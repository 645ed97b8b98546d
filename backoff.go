package syncguard

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// retryPolicy is the retry delay of Guard's acquisition loop (docs/contract.md#what-the-application-layer-does) as a backoff.BackOff:
// base = RetryDelay·2^(n−1) (exponential) or RetryDelay (fixed), then
// jitter: none d = base; equal d = base/2 + U·base/2; full d = U·base.
type retryPolicy struct {
	delay   time.Duration
	exp     bool
	jitter  JitterStrategy
	attempt int
	random  func() float64
}

var _ backoff.BackOff = (*retryPolicy)(nil)

// maxBackoffDelay caps the exponential growth (it is clamped by Timeout
// anyway) and keeps the shift from overflowing.
const maxBackoffDelay = 24 * time.Hour

func (p *retryPolicy) NextBackOff() time.Duration {
	p.attempt++
	base := p.delay
	if p.exp {
		for i := 1; i < p.attempt && base < maxBackoffDelay; i++ {
			base *= 2
		}
		base = min(base, maxBackoffDelay)
	}
	switch p.jitter {
	case JitterFull:
		return time.Duration(p.random() * float64(base))
	case JitterEqual:
		half := base / 2
		return half + time.Duration(p.random()*float64(base-half))
	default:
		return base
	}
}

func (p *retryPolicy) Reset() { p.attempt = 0 }
