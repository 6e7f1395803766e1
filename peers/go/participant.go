// Participant commands and events: names, metadata and attributes (ours to set, everyone's
// to report), and end-to-end encryption of data packets (a passphrase given at connect).
package main

import (
	"maps"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/e2ee"
)

// describe is what we know of a participant (local or remote).
func describe(p lksdk.Participant) map[string]any {
	attributes := maps.Clone(p.Attributes())
	if attributes == nil {
		attributes = map[string]string{}
	}
	return map[string]any{
		"identity": p.Identity(), "name": p.Name(), "metadata": p.Metadata(), "attributes": attributes,
	}
}

// participantInfo lists every participant, ourselves first, as `describe` does.
func (p *peer) participantInfo() []map[string]any {
	all := []map[string]any{describe(p.room.LocalParticipant)}
	for _, rp := range p.room.GetRemoteParticipants() {
		all = append(all, describe(rp))
	}
	return all
}

// watchParticipants reports metadata and attribute changes, each with the participant as it
// is now (the SDK has no callback for a name change: a name arrives with the next of these,
// or is read with `participant_info`).
func (p *peer) watchParticipants(cb *lksdk.RoomCallback) {
	cb.OnMetadataChanged = func(old string, who lksdk.Participant) {
		fields := describe(who)
		fields["old"] = old
		p.emit("metadata_changed", fields)
	}
	cb.OnAttributesChanged = func(changed map[string]string, who lksdk.Participant) {
		fields := describe(who)
		fields["changed"] = changed
		p.emit("attributes_changed", fields)
	}
}

// encryption is the connect option for a shared passphrase (PBKDF2, as every SDK derives
// it), or nil for none.
func encryption(passphrase string) (lksdk.ConnectOption, error) {
	if passphrase == "" {
		return nil, nil
	}
	keys := e2ee.NewExternalKeyProvider()
	if err := keys.SetKeyFromPassphrase(passphrase, 0); err != nil {
		return nil, err
	}
	return lksdk.WithDataEncryption(&lksdk.EncryptionOptions{KeyProvider: keys}), nil
}
