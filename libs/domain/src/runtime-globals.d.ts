// The two web-platform globals the domain relies on. Both Node (>= 16) and workerd provide them;
// declaring just these keeps DOM and Node typings (and everything else they allow) out of the core.
declare function atob(data: string): string;
declare function btoa(data: string): string;
