package vendor

// Limiter bounds the calls to the vendor in flight, passthrough included:
// beyond the bound callers are told to come back (503), rather than pile up.
type Limiter struct {
	slots chan struct{}
	// watch, when set, hears each change of the calls in flight (+1, -1)
	// and each refusal (0).
	watch func(delta int)
}

// NewLimiter allows n calls in flight; watch may be nil.
func NewLimiter(n int, watch func(delta int)) *Limiter {
	return &Limiter{slots: make(chan struct{}, n), watch: watch}
}

// Acquire takes a slot, or answers errOverloaded at once.
func (l *Limiter) Acquire() (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		l.notify(1)
		return func() { <-l.slots; l.notify(-1) }, nil
	default:
		l.notify(0)
		return nil, errOverloaded()
	}
}

func (l *Limiter) notify(delta int) {
	if l.watch != nil {
		l.watch(delta)
	}
}
