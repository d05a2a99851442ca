package devcloud

import (
	"encoding/json"
	"maps"
	"net/http"
)

// InventoryAttribute is one inventory attribute; Value is a string or a
// list of strings as the device sent it.
type InventoryAttribute struct {
	Name        string          `json:"name"`
	Value       json.RawMessage `json:"value"`
	Description string          `json:"description,omitempty"`
}

// handleInventory serves PUT (replace the whole set) and PATCH (upsert).
func (s *MenderServer) handleInventory(w http.ResponseWriter, r *http.Request) {
	var attrs []InventoryAttribute
	if !s.decodeBody(w, r, &attrs) {
		return
	}
	for _, a := range attrs {
		if a.Name == "" || len(a.Value) == 0 {
			s.errorf(w, r, http.StatusBadRequest, "inventory attribute needs name and value")
			return
		}
	}
	dev := requestDeviceID(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	inv := s.inventory[dev]
	if inv == nil || r.Method == http.MethodPut {
		inv = make(map[string]InventoryAttribute)
		s.inventory[dev] = inv
	}
	for _, a := range attrs {
		inv[a.Name] = a
	}
	w.WriteHeader(http.StatusOK)
}

// Inventory returns deviceID's inventory by attribute name.
func (s *MenderServer) Inventory(deviceID string) map[string]InventoryAttribute {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.inventory[deviceID])
}
