package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
)

// ErrNoDaemon is returned by Dial when no daemon answers on the home's
// socket.
var ErrNoDaemon = errors.New("no daemon is running")

// Client talks to a running daemon through its local API.
type Client struct {
	http *http.Client
}

// Dial connects to the daemon of home, or returns ErrNoDaemon.
func Dial(home string) (*Client, error) {
	path := filepath.Join(home, SocketFile)
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, ErrNoDaemon
	}
	conn.Close()
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://rbnode"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDaemon, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return fmt.Errorf("daemon answered %s", resp.Status)
		}
		switch e.Kind {
		case "usage":
			return usagef("%s", e.Error)
		case "permission":
			return fmt.Errorf("daemon: %s: %w", strings.TrimSuffix(e.Error, ": "+ErrPermission.Error()), ErrPermission)
		case "disk_full":
			return fmt.Errorf("daemon: %s: %w", strings.TrimSuffix(e.Error, ": "+ErrDiskFull.Error()), ErrDiskFull)
		case "unknown_release":
			return fmt.Errorf("%s: %w", e.Error, ErrUnknownRelease)
		case "no_builder_key":
			return ErrNoBuilderKey
		}
		return fmt.Errorf("daemon: %s", e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Status is Node.Status through the daemon.
func (c *Client) Status(ctx context.Context, project, version string, quorum int) (*attest.Report, error) {
	q := url.Values{}
	if project != "" {
		q.Set("project", project)
	}
	if quorum > 0 {
		q.Set("quorum", strconv.Itoa(quorum))
	}
	var r attest.Report
	err := c.call(ctx, "GET", "/v1/status/"+url.PathEscape(version)+"?"+q.Encode(), nil, &r)
	return &r, err
}

// Releases is Node.Releases through the daemon.
func (c *Client) Releases(ctx context.Context, project string, quorum int) ([]ReleaseSummary, error) {
	q := url.Values{}
	if project != "" {
		q.Set("project", project)
	}
	if quorum > 0 {
		q.Set("quorum", strconv.Itoa(quorum))
	}
	var out []ReleaseSummary
	err := c.call(ctx, "GET", "/v1/releases?"+q.Encode(), nil, &out)
	return out, err
}

// ReleaseDocuments is Node.ReleaseDocuments through the daemon.
func (c *Client) ReleaseDocuments(ctx context.Context, project, version string) ([]ExportDoc, error) {
	q := url.Values{}
	if project != "" {
		q.Set("project", project)
	}
	var out []ExportDoc
	err := c.call(ctx, "GET", "/v1/documents/"+url.PathEscape(version)+"?"+q.Encode(), nil, &out)
	return out, err
}

// VerifyHashes is Node.VerifyHashes through the daemon.
func (c *Client) VerifyHashes(ctx context.Context, files []FileHash, project, version string, quorum int) ([]FileResult, error) {
	var out []FileResult
	err := c.call(ctx, "POST", "/v1/verify", VerifyRequest{Files: files, Project: project, Version: version, Quorum: quorum}, &out)
	return out, err
}

// Import asks the daemon to import a path (on the same host).
func (c *Client) Import(ctx context.Context, req ImportRequest) (*ImportSummary, error) {
	var out ImportSummary
	err := c.call(ctx, "POST", "/v1/import", req, &out)
	return &out, err
}

// Publish asks the daemon to import a path and gossip its documents.
func (c *Client) Publish(ctx context.Context, req ImportRequest) (*PublishSummary, error) {
	var out PublishSummary
	err := c.call(ctx, "POST", "/v1/publish", req, &out)
	return &out, err
}

// Trust adds keys or fingerprints to the daemon's trust set.
func (c *Client) Trust(ctx context.Context, req TrustRequest) ([]KeyInfo, error) {
	var out []KeyInfo
	err := c.call(ctx, "POST", "/v1/trust", req, &out)
	return out, err
}

// Untrust removes a fingerprint from the daemon's trust set.
func (c *Client) Untrust(ctx context.Context, fp string) error {
	return c.call(ctx, "DELETE", "/v1/trust/"+url.PathEscape(fp), nil, &struct{}{})
}

// TrustList lists the daemon's trusted keys.
func (c *Client) TrustList(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := c.call(ctx, "GET", "/v1/trust", nil, &out)
	return out, err
}

// Keys lists the daemon's known keys.
func (c *Client) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := c.call(ctx, "GET", "/v1/keys", nil, &out)
	return out, err
}

// Identity returns the daemon's peer ID and addresses.
func (c *Client) Identity(ctx context.Context) (*Identity, error) {
	var out Identity
	err := c.call(ctx, "GET", "/v1/id", nil, &out)
	return &out, err
}

// Peers lists the daemon's connected peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var out []Peer
	err := c.call(ctx, "GET", "/v1/peers", nil, &out)
	return out, err
}

// Request asks the daemon to sign, store and gossip a build request.
func (c *Client) Request(ctx context.Context, req RequestOptions) (*RequestSummary, error) {
	var out RequestSummary
	if err := c.call(ctx, "POST", "/v1/request", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddBuild stores a build record in the daemon's store.
func (c *Client) AddBuild(ctx context.Context, r *builder.Record) error {
	return c.call(ctx, "POST", "/v1/builds", r, &struct{}{})
}

// Builds lists the daemon's build records.
func (c *Client) Builds(ctx context.Context) ([]builder.Record, error) {
	var out []builder.Record
	err := c.call(ctx, "GET", "/v1/builds", nil, &out)
	return out, err
}
