package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// wireEvent is an event as it travels.
type wireEvent struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Time string          `json:"time,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Parse decodes an event. On error the returned Event still carries the id
// if the payload had a usable one, so the rejection can be recorded under it.
func Parse(payload []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(payload, &w); err != nil {
		return Event{}, fmt.Errorf("parse event: %w", err)
	}
	if w.ID == "" {
		return Event{}, errors.New("parse event: no id")
	}
	if len(w.ID) > MaxIDLen {
		return Event{}, fmt.Errorf("parse event: id is longer than %d bytes", MaxIDLen)
	}
	ev := Event{ID: w.ID}
	if w.Type == "" {
		return ev, errors.New("parse event: no type")
	}
	if len(w.Type) > MaxTypeLen {
		return ev, fmt.Errorf("parse event: type is longer than %d bytes", MaxTypeLen)
	}
	ev.Type = w.Type
	if w.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			return ev, fmt.Errorf("parse event: time: %w", err)
		}
		ev.Time = t
	}
	if len(w.Body) > 0 && !bytes.Equal(w.Body, []byte("null")) {
		ev.Body = w.Body
	}
	return ev, nil
}

// MarshalJSON encodes ev as it travels on the events topic.
func (ev Event) MarshalJSON() ([]byte, error) {
	w := wireEvent{ID: ev.ID, Type: ev.Type, Body: ev.Body}
	if !ev.Time.IsZero() {
		w.Time = ev.Time.Format(time.RFC3339Nano)
	}
	return json.Marshal(w)
}
