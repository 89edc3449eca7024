package wire

import (
	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// filterPB converts every variant the filter holds, not only the one its
// Type names: the model does not enforce a single one, and the wire keeps
// what the model holds.
func filterPB(f *model.Filter) *meshpb.Filter {
	pb := &meshpb.Filter{Type: f.Type}
	if h := f.HeaderModifier; h != nil {
		pb.HeaderModifier = &meshpb.HeaderModifier{
			Set:    pbList(h.Set, headerPB),
			Add:    pbList(h.Add, headerPB),
			Remove: stringList(h.Remove),
		}
	}
	if r := f.RequestRedirect; r != nil {
		pb.RequestRedirect = &meshpb.RequestRedirect{
			Scheme:     r.Scheme,
			Hostname:   r.Hostname,
			Path:       pathModifierPB(r.Path),
			Port:       uint32(r.Port),
			StatusCode: int64(r.StatusCode),
		}
	}
	if u := f.URLRewrite; u != nil {
		pb.UrlRewrite = &meshpb.URLRewrite{Hostname: u.Hostname, Path: pathModifierPB(u.Path)}
	}
	if m := f.RequestMirror; m != nil {
		pb.RequestMirror = &meshpb.RequestMirror{Cluster: m.Cluster, Percent: m.Percent}
	}
	return pb
}

func filterModel(pb *meshpb.Filter) (model.Filter, error) {
	var c checker
	f := model.Filter{Type: pb.GetType()}
	if h := pb.GetHeaderModifier(); h != nil {
		f.HeaderModifier = &model.HeaderModifier{
			Set:    modelList(h.GetSet(), headerModel),
			Add:    modelList(h.GetAdd(), headerModel),
			Remove: stringList(h.GetRemove()),
		}
	}
	if r := pb.GetRequestRedirect(); r != nil {
		f.RequestRedirect = &model.RequestRedirect{
			Scheme:     r.GetScheme(),
			Hostname:   r.GetHostname(),
			Path:       pathModifierModel(r.GetPath()),
			Port:       c.port("requestRedirect.port", r.GetPort()),
			StatusCode: c.int("requestRedirect.statusCode", r.GetStatusCode()),
		}
	}
	if u := pb.GetUrlRewrite(); u != nil {
		f.URLRewrite = &model.URLRewrite{Hostname: u.GetHostname(), Path: pathModifierModel(u.GetPath())}
	}
	if m := pb.GetRequestMirror(); m != nil {
		f.RequestMirror = &model.RequestMirror{Cluster: m.GetCluster(), Percent: m.GetPercent()}
	}
	return f, c.err
}

func headerPB(h *model.Header) *meshpb.Header {
	return &meshpb.Header{Name: h.Name, Value: h.Value}
}

func headerModel(pb *meshpb.Header) model.Header {
	return model.Header{Name: pb.GetName(), Value: pb.GetValue()}
}

func pathModifierPB(p *model.PathModifier) *meshpb.PathModifier {
	if p == nil {
		return nil
	}
	return &meshpb.PathModifier{Type: p.Type, Value: p.Value}
}

func pathModifierModel(pb *meshpb.PathModifier) *model.PathModifier {
	if pb == nil {
		return nil
	}
	return &model.PathModifier{Type: pb.GetType(), Value: pb.GetValue()}
}
