// A toy sim-only top for the harness tests (f8hw.rtlsim): same ports and
// plusargs as f8hw.hw.simtop.  imem[0] = number of cycles to run (0: never
// finish), imem[1] = error code to raise at the end (0: none); main memory
// words are incremented by 1 when the run ends and dumped with $writememh.
module toy_top(input clk, input rst, output reg done, output reg error,
               output reg [7:0] error_code, output reg [31:0] cycles,
               output reg [31:0] busy, output reg [31:0] stall);
  reg [127:0] imem [0:15];
  reg [31:0] mem [0:63];
  reg [31:0] marks [0:3];
  reg [1023:0] fname;
  reg dumped;
  integer i;
  initial begin
    for (i = 0; i < 64; i = i + 1) mem[i] = 0;
    for (i = 0; i < 16; i = i + 1) imem[i] = 0;
    if ($value$plusargs("imem=%s", fname)) $readmemh(fname, imem);
    if ($value$plusargs("mem=%s", fname)) $readmemh(fname, mem);
  end
  always @(posedge clk) begin
    if (rst) begin
      done <= 0; error <= 0; error_code <= 0; cycles <= 0; busy <= 0; stall <= 0; dumped <= 0;
    end else if (!done && !error) begin
      cycles <= cycles + 1;
      busy <= busy + cycles[0];
      stall <= stall + !cycles[0];
      marks[cycles[1:0]] <= cycles;
      if (imem[0] != 0 && cycles + 1 == imem[0][31:0]) begin
        if (imem[1] != 0) begin error <= 1; error_code <= imem[1][7:0]; end
        else done <= 1;
      end
    end else if (!dumped) begin
      dumped <= 1;
      for (i = 0; i < 64; i = i + 1) mem[i] = mem[i] + 1;
      if ($value$plusargs("dump=%s", fname)) $writememh(fname, mem);
      if ($value$plusargs("marks=%s", fname)) $writememh(fname, marks);
    end
  end
endmodule
